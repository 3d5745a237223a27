"""Test harness: the real app served on loopback, on SQLite or PostgreSQL.

Select the database with RELAYDESK_TEST_DB=sqlite (default) or postgresql; set
TEST_DATABASE_URL to use an existing PostgreSQL server instead of a throwaway one.
With CI=true a missing prerequisite fails the run instead of skipping. Each pytest
process (each xdist worker of `make test-fast`) has its own data directory, SQLite
file, task queue, port and throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from relaydesk.core import clock as core_clock
from tests.fakes import openai_fake as openai_fake
from tests.pgserver import PgCluster, find_bindir, free_port

BACKEND = os.environ.get("RELAYDESK_TEST_DB", "sqlite")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]
SPECS = REPO.parent / "shared" / "specs"
UNIT_TESTS = REPO / "tests" / "unit"  # pure logic: no app, no database (tests/unit)

_DATA_DIR = Path(tempfile.mkdtemp(prefix="relaydesk-test-"))
_PORT = free_port()
_pg: PgCluster | None = None

# The app reads its settings once per process: fix them before anything imports it.
for _name in list(os.environ):
    if _name.startswith(
        ("TWILIO_", "SANDBOX_", "DATABASE_", "PUBLIC_BASE", "REDIS_", "OPENAI_", "LLM_")
    ):
        del os.environ[_name]
os.environ.update(
    {
        "DATA_DIR": str(_DATA_DIR),
        "PORT": str(_PORT),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SANDBOX_STATUS_DELAY_MS": "0",
        "LOG_LEVEL": "WARNING",
        "WORKER_THREADS": "2",
        "LLM_RETRY_BACKOFF_SECONDS": "0",
        # The fake AI servers listen on loopback.
        "LLM_ALLOW_PRIVATE_NETWORKS": "true",
        # The test receivers of outgoing webhooks listen on loopback.
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
    }
)
os.environ.pop("DB_PATH", None)


def missing(reason: str) -> None:
    """Skip locally, fail in CI: a skipped test in CI hides breakage."""
    if IN_CI:
        pytest.fail(f"CI=true and a test prerequisite is missing: {reason}")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND != "postgresql":
        return
    if os.environ.get("TEST_DATABASE_URL"):
        os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
        return
    if find_bindir() is None:
        if IN_CI:
            raise pytest.UsageError("CI=true but PostgreSQL is not installed (initdb/pg_ctl)")
        raise pytest.UsageError("RELAYDESK_TEST_DB=postgresql but PostgreSQL is not installed")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the throwaway PostgreSQL cluster, unless every test collected is a unit test.

    After collection and before the first test: nothing reads DATABASE_URL earlier.
    Under xdist each worker collects and starts its own cluster (the controller none).
    """
    global _pg
    if BACKEND != "postgresql" or os.environ.get("TEST_DATABASE_URL") or _pg is not None:
        return
    if all(UNIT_TESTS in Path(str(item.path)).parents for item in session.items):
        return
    bindir = find_bindir()
    assert bindir is not None  # checked in pytest_configure
    _pg = PgCluster(bindir)
    os.environ["DATABASE_URL"] = _pg.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _pg is not None:
        _pg.stop()


BROWSER_FIXTURES = frozenset({"browser", "new_page"})  # Playwright driving Chromium


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that drives Chromium is a `browser` test, whichever module holds it."""
    for item in items:
        if BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


def pytest_report_header(config: pytest.Config) -> str:
    return f"relaydesk database backend: {BACKEND}"


class LiveServer:
    """The relaydesk app running under uvicorn in a thread."""

    def __init__(self) -> None:
        import uvicorn

        from relaydesk.app import create_app

        self.url = f"http://127.0.0.1:{_PORT}"
        config = uvicorn.Config(
            create_app(run_worker=True),
            host="127.0.0.1",
            port=_PORT,
            log_level="warning",
            lifespan="on",
            # As `relaydesk serve`: the app applies X-Forwarded-* itself.
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("the test server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """The app with its worker and sandbox emulator, on a migrated database."""
    from relaydesk import migrations

    migrations.upgrade()
    live = LiveServer()
    live.start()
    yield live
    live.stop()


# Tables whose rows the migrations create: reset, not emptied.
SEEDED = {
    "message_counters": "UPDATE message_counters SET count = 0",
    # The settings are emptied: a change every process's copy must see.
    "settings_version": "UPDATE settings_version SET version = version + 1",
}
IDLE_TIMEOUT = 60.0  # longest a job may run on after its test (a campaign's dispatcher)


def wait_until_idle() -> None:
    """Drop the queued jobs and wait until no job runs in this process's worker.

    The previous test's background work (a campaign's dispatcher, a callback) would
    otherwise write while its rows are deleted: rows reappear in the next test, and on
    PostgreSQL its row locks and ours can deadlock. A job that finishes may queue
    another one, so the queue is dropped again once the worker is idle.
    """
    from relaydesk.core.tasks import hueys, running_jobs

    for huey in hueys().values():
        huey.flush()
    wait_for(lambda: not running_jobs(), timeout=IDLE_TIMEOUT, what="the worker to be idle")
    for huey in hueys().values():
        huey.flush()


def empty_tables() -> None:
    """Delete every row of every table (children first), as the models declare them."""
    from relaydesk.core import domains
    from relaydesk.core.db import Base, get_engine
    from relaydesk.messaging.models import SEARCH_METADATA

    domains.load_models()  # every domain's tables in the metadata
    # And the search index, derived data outside the models' metadata.
    tables = list(reversed(Base.metadata.sorted_tables)) + SEARCH_METADATA.sorted_tables
    # A job outside the worker (a thread of the emulator, a callback being answered) may
    # still write: on PostgreSQL the database may abort one of two deadlocked
    # transactions; ours is simply tried again.
    for attempt in range(5):
        try:
            with get_engine().begin() as conn:
                for table in tables:
                    if table.name in SEEDED:
                        conn.execute(text(SEEDED[table.name]))
                    else:
                        conn.execute(table.delete())
            return
        except OperationalError as exc:
            if "deadlock" not in str(exc).lower() or attempt == 4:
                raise


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the server starts from empty tables and an empty emulator."""
    if "server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("server")
    wait_until_idle()
    empty_tables()
    from relaydesk.channels.sandbox.runtime import get_emulator

    get_emulator().reset()
    yield


class FreshReads:
    """A read session whose every query sees the latest committed data.

    A transaction left open would pin an old snapshot (and on SQLite, a write lock
    would block the server), so each read starts a new short transaction.
    """

    _READS = frozenset({"scalar", "scalars", "get", "execute"})

    def __init__(self, session: Any) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._session, name)
        if name not in self._READS:
            return attr

        def fresh(*args: Any, **kwargs: Any) -> Any:
            self._session.rollback()
            return attr(*args, **kwargs)

        return fresh


@pytest.fixture
def db() -> Iterator[Any]:
    """A read-only session for checking rows (see FreshReads)."""
    from relaydesk.core.db import get_sessionmaker

    session = get_sessionmaker()()
    try:
        yield FreshReads(session)
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def make_token(server: LiveServer) -> Callable[[str], str]:
    """Create an API token with a role; returns the plain token."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    def make(role: str = "admin") -> str:
        with session_scope() as session:
            _, plain = auth.create_token(session, f"test-{role}", role, "test")
        return plain

    return make


@pytest.fixture
def api(server: LiveServer, make_token: Callable[[str], str]) -> Iterator[httpx.Client]:
    """An HTTP client to the live server with an admin API token."""
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {make_token('admin')}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def twilio_post(server: LiveServer) -> Callable[..., httpx.Response]:
    """POST form parameters to a webhook path, signed like Twilio (or with `signature=`)."""
    from relaydesk.channels.twilio.signature import sign

    def post(
        path: str, params: dict[str, str], signature: str | None = None, **headers: str
    ) -> httpx.Response:
        url = server.url + path
        sig = sign(url, params, AUTH_TOKEN) if signature is None else signature
        return httpx.post(
            url, data=params, headers={"X-Twilio-Signature": sig, **headers}, timeout=30
        )

    return post


@pytest.fixture
def empty_spool() -> Iterator[None]:
    """The webhook spool starts empty (other tests may leave webhooks or dead letters)."""
    folder = _DATA_DIR / "spool"
    shutil.rmtree(folder, ignore_errors=True)
    yield
    shutil.rmtree(folder, ignore_errors=True)


class FrozenClock:
    """relaydesk's clock (`relaydesk.core.clock`) held at a moment a test chose."""

    def __init__(self) -> None:
        self.at = core_clock.system_now()

    def __call__(self) -> datetime:
        return self.at

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at `at` (aware; default the present moment); returns it in UTC."""
        # Kept in UTC: moving a zoned time would add wall-clock hours across a DST change.
        self.at = core_clock.system_now() if at is None else at.astimezone(UTC)
        core_clock.set_source(self)
        return self.at

    def move(self, delta: timedelta) -> datetime:
        """Move the frozen clock by `delta` (forward or back); returns the new time."""
        self.at += delta
        return self.at


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    """Freeze or move relaydesk's clock in this test; back to the system clock after it."""
    frozen = FrozenClock()
    try:
        yield frozen
    finally:
        core_clock.reset()


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll until `check()` is truthy (asynchronous outcomes; never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Member:
    """A team member: their user id, e-mail address and an API client acting as them."""

    id: int
    email: str
    client: httpx.Client


@pytest.fixture
def team(server: LiveServer) -> Iterator[Callable[..., Member]]:
    """Make users (with a name and a role), each with a token that acts as them."""
    from relaydesk.auth import service as auth
    from relaydesk.core.db import session_scope

    clients: list[httpx.Client] = []

    def make(name: str, role: str = "operator", local: str | None = None) -> Member:
        local = local or f"{name.lower().replace(' ', '.')}-{secrets.token_hex(3)}"
        email = f"{local}@example.com"
        with session_scope() as session:
            user = auth.create_user(session, email, "x" * 12, role, "t")
            user.name = name
            session.flush()
            _, plain = auth.create_token(session, f"{name}'s token", role, "t", user_id=user.id)
            user_id = user.id
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {plain}"}, timeout=30
        )
        clients.append(client)
        return Member(user_id, email, client)

    yield make
    for client in clients:
        client.close()


def customer_writes(
    post: Callable[..., httpx.Response],
    sender: str,
    body: str = "Dzień dobry",
    to: str = "+15005550006",
) -> None:
    """A customer's text reaches relaydesk as Twilio's signed webhook (stored on a 200)."""
    answer = post(
        "/twilio/inbound",
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": "0",
        },
    )
    assert answer.status_code == 200, answer.text
