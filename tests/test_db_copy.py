"""`relaydesk db copy`: a SQLite installation moved into an empty PostgreSQL database.

The big source is real: `relaydesk serve` on SQLite, fed through its API and the
sandbox phone (customers texting in Polish, a location, a photo, STOP; sends, a
scheduled send, a campaign, auto-replies, an encrypted API key, users and tokens).
It is copied by the real CLI, compared table by table as relaydesk's own types read
it, and served from PostgreSQL: the same messages, the old tokens, new ids above the
copied ones. Smaller sources show each value kind surviving exactly, each refusal, and
that a copy which fails or does not verify leaves the target as empty as it was.

Targets are fresh databases in the suite's PostgreSQL cluster, or, when the suite runs
on SQLite, in a cluster this module starts (with CI=true, no PostgreSQL fails the run).
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import URL, make_url

from relaydesk import dbcopy, migrations
from relaydesk.core import domains
from relaydesk.core.db import Base, make_engine
from relaydesk.dbcopy import copier
from relaydesk.messaging.models import SEARCH_METADATA
from tests.conftest import BACKEND, missing
from tests.pgserver import PgCluster, find_bindir, free_port
from tests.processes import CLI, Deployment, wait_until

domains.load_models()  # every table in Base.metadata

# Trust authentication ignores it; no output may show it, in any spelling.
PASSWORD = "Tajne-Hasło-42"
PASSWORD_FORMS = ("Hasło-42", "Has%C5%82o-42")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f80f0000010101001be5d7c60000000049454e44ae426082"
)
ANNA, JAN, EWA, OPTED_OUT, NEW_CUSTOMER = (
    "+48600100201",
    "+48600100202",
    "+48600100203",
    "+48600100204",
    "+48600100299",
)
FINAL = {"delivered", "undelivered", "failed", "read", "canceled"}


# --- PostgreSQL targets -------------------------------------------------------------


def conninfo(url: URL) -> str:
    """A libpq URI for psycopg."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def conninfo_sa(url: URL) -> str:
    """The URL as relaydesk's DATABASE_URL (psycopg driver, password included)."""
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@dataclass
class Postgres:
    """A PostgreSQL server on loopback where this module creates its databases."""

    server: URL
    created: list[str]

    def new_database(self, polish: bool = False) -> URL:
        """A new, empty database; its URL carries PASSWORD (ignored by trust auth).

        `polish`: text sorts as in Poland (ICU pl-PL), not byte by byte as in SQLite.
        """
        name = f"copy_{secrets.token_hex(5)}"
        create = f"CREATE DATABASE {name}"  # a fixed-shape generated name
        if polish:
            create += " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'pl-PL' LOCALE 'C'"
        with psycopg.connect(conninfo(self.server.set(database="postgres")), autocommit=True) as c:
            try:
                c.execute(create.encode())
            except psycopg.Error as exc:
                missing(f"PostgreSQL cannot create an ICU-collated database: {exc}")
        self.created.append(name)
        return self.server.set(database=name, password=PASSWORD)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """The suite's cluster when it runs on PostgreSQL, else one of this module's own."""
    cluster = None
    if BACKEND == "postgresql":
        server = make_url(os.environ["DATABASE_URL"])
    else:
        bindir = find_bindir()
        if bindir is None:
            missing("PostgreSQL is not installed (initdb, pg_ctl): the copy needs a target")
        assert bindir is not None
        cluster = PgCluster(bindir)
        server = make_url(cluster.start())
    pg = Postgres(server, [])
    try:
        yield pg
    finally:
        if cluster is not None:
            cluster.stop()
        else:
            admin = conninfo(server.set(database="postgres"))
            with psycopg.connect(admin, autocommit=True) as conn:
                for name in pg.created:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def relations(url: URL) -> list[str]:
    """Every table, view and sequence in the database's public schema."""
    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S') ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def fetch(url: URL, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(url)) as conn:
        return conn.execute(sql.encode()).fetchall()


# --- Sources ------------------------------------------------------------------------


def small_source(tmp_path: Path, revision: str = "head") -> Path:
    """DATA_DIR with a migrated SQLite file holding one conversation of three messages."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = make_engine(f"sqlite:///{data_dir / 'app.db'}")
    migrations.upgrade(revision, engine=engine)
    if revision == "head":
        with engine.begin() as conn:
            _conversation(conn, ANNA, ["Dzień dobry", "Gdzie paczka?", "Dziękuję!"])
    engine.dispose()
    return data_dir


def _conversation(conn: Any, phone: str, bodies: list[str]) -> None:
    tables = Base.metadata.tables
    contact = conn.execute(insert(tables["contacts"]).values(phone=phone, channel="sms"))
    conversation = conn.execute(
        insert(tables["conversations"]).values(
            contact_id=contact.inserted_primary_key[0],
            participant=phone,
            channel="sms",
            our_address="+48500000000",
        )
    ).inserted_primary_key[0]
    for body in bodies:
        conn.execute(
            insert(tables["messages"]).values(
                direction="inbound",
                channel="sms",
                from_addr=phone,
                to_addr="+48500000000",
                participant=phone,
                conversation_id=conversation,
                body=body,
                media=[],
                raw=None,  # JSON null (SQL NULL is a different value)
                status="received",
                source="customer",
            )
        )


def cli_env(data_dir: Path) -> dict[str, str]:
    """The environment of an installation whose database is DATA_DIR's SQLite file."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DB_PATH", "PORT")}
    env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING")
    return env


def copy_cli(env: dict[str, str], to: URL | str, *extra: str) -> subprocess.CompletedProcess[str]:
    target = to if isinstance(to, str) else to.render_as_string(hide_password=False)
    return subprocess.run(
        [*CLI, "db", "copy", "--to", target, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_no_password(done: subprocess.CompletedProcess[str]) -> None:
    for form in PASSWORD_FORMS:
        assert form not in done.stdout + done.stderr


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as relaydesk's own column types read them, in key order."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            key = [table.columns.keys().index(c.name) for c in table.primary_key.columns]
            found = [tuple(r) for r in conn.execute(select(table))]
            out[table.name] = sorted(found, key=lambda r: tuple(r[i] for i in key))
    return out


# --- The real installation ------------------------------------------------------------


@dataclass
class Installation:
    """A `relaydesk serve` on SQLite after some traffic, stopped; what its API showed."""

    data_dir: Path
    env: dict[str, str]
    operator_token: str
    admin_token: str
    messages: list[dict[str, Any]]
    conversations: list[dict[str, Any]]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("copy-source")
    app = Deployment(
        data_dir, DATABASE_URL=f"sqlite:///{data_dir / 'app.db'}", CAMPAIGN_RATE_MPS="20"
    )
    admin = app.run("token", "create", "copy-admin", "--role", "admin").strip().splitlines()[-1]
    for email, role in (("szef@example.com", "admin"), ("ola@example.com", "viewer")):
        password = "długie-hasło-123"
        app.run("user", "create", "--email", email, "--password", password, "--role", role)
    app.start()
    try:
        with app.client() as api, _client(app.url, admin) as admin_api:
            _traffic(app, api, admin_api)
            messages = _all_messages(api)
            conversations = api.get("/api/conversations", params={"limit": 100}).json()["items"]
    finally:
        app.stop()
    yield Installation(data_dir, app.env, app.token, admin, messages, conversations)


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _ok(answer: httpx.Response) -> httpx.Response:
    assert answer.is_success, f"{answer.request.url} answered {answer.status_code}: {answer.text}"
    return answer


def _traffic(app: Deployment, api: httpx.Client, admin: httpx.Client) -> None:
    """Customers text in, relaydesk answers and sends; then everything settles."""
    _ok(api.put("/api/auto-reply", json={"enabled": True, "message": "Dziękujemy! Odpiszemy 🙂"}))
    _ok(admin.put("/api/ai/config", json={"api_key": "sk-test-0123456789abcdef"}))  # encrypted
    phone = "/sandbox/phone/messages"
    _ok(api.post(phone, json={"from": ANNA, "body": "Dzień dobry, gdzie moja paczka? Zażółć"}))
    location = {
        "from": f"whatsapp:{JAN}",
        "body": "Jestem tutaj",
        "latitude": 52.2297,
        "longitude": 21.0122,
        "address": "Plac Defilad 1, Warszawa",
        "profile_name": "Jan Kowalski",
    }
    _ok(api.post(phone, json=location))
    _ok(
        api.post(
            phone,
            data={"from": EWA, "body": "Zdjęcie paragonu"},
            files=[("media", ("paragon.png", PNG, "image/png"))],
        )
    )
    _ok(api.post(phone, json={"from": OPTED_OUT, "body": "STOP"}))
    _ok(api.post("/api/send-message", json={"to": ANNA, "body": "Paczka wyjechała 📦\nDo jutra"}))
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    _ok(api.post("/api/send-message", json={"to": EWA, "body": "Wizyta", "send_at": later}))
    campaign = {
        "numbers": f"600 100 301, 600100302; +48 600 100 303, 600100301, {OPTED_OUT}, zły",
        "body": "Promocja -20% tylko dziś!",
    }
    batch = _ok(api.post("/api/multi-sms/batches", json=campaign)).json()

    def settled() -> bool:
        status = api.get(f"/api/multi-sms/batches/{batch['id']}").json()["status"]
        runs = api.get("/api/automation/runs", params={"limit": 100}).json()
        messages = _all_messages(api)
        return (
            status in ("completed", "failed", "canceled")
            and len(runs) >= 3  # one per message but STOP
            and all(run["state"] == "done" for run in runs)
            and all(
                m["status"] in FINAL or m["status"] == "scheduled"
                for m in messages
                if m["direction"] == "outbound"
            )
            and all(
                item["state"] in ("stored", "refused", "failed")
                for m in messages
                for item in m["media"]
                if item.get("state")
            )
        )

    wait_until(settled, timeout=120, what="the traffic to settle", deployment=app)


def _all_messages(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = _ok(api.get("/api/messages", params=params)).json()
        found += page["items"]
        cursor = page["next"]
        if not cursor:
            return found


# --- The copy, end to end -------------------------------------------------------------


@pytest.mark.e2e
def test_a_real_installation_moves_to_postgresql_and_serves_from_it(
    installation: Installation, postgres: Postgres
) -> None:
    source_db = installation.data_dir / "app.db"
    with sqlite3.connect(source_db) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in Base.metadata.tables
        }
        secret = conn.execute("SELECT count(*) FROM settings WHERE is_secret").fetchone()[0]
        opted_out = conn.execute("SELECT count(*) FROM contacts WHERE opted_out_at IS NOT NULL")
        assert opted_out.fetchone()[0] == 1
    # The traffic reached every kind of row the test is about.
    for table in (
        "messages", "conversations", "contacts", "attachments", "automation_runs",
        "multi_sms_batches", "multi_sms_recipients", "message_events", "audit_log",
        "users", "api_tokens",
    ):  # fmt: skip
        assert counts[table] > 0, table
    assert counts["users"] >= 2 and counts["api_tokens"] >= 2 and secret >= 1

    target = postgres.new_database()
    done = copy_cli(installation.env, target)

    assert done.returncode == 0, done.stdout + done.stderr
    assert_no_password(done)
    assert "every count and checksum matches" in done.stdout
    summary = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line}
    for table, count in counts.items():
        assert summary[table][1:3] == [f"{count:,}", f"{count:,}"], summary[table]
        assert summary[table][-1] == "ok"
    # Read again independently, as relaydesk's column types read each database.
    source, copied = make_engine(f"sqlite:///{source_db}"), make_engine(conninfo_sa(target))
    try:
        before, after = rows(source), rows(copied)
    finally:
        source.dispose()
        copied.dispose()
    for table in before:
        assert after[table] == before[table], table
    # SQL NULL and JSON null stayed apart (relaydesk reads both as None).
    with sqlite3.connect(source_db) as conn:
        raw_nulls = conn.execute(
            "SELECT count(*) FILTER (WHERE raw IS NULL), count(*) FILTER (WHERE raw = 'null') "
            "FROM messages"
        ).fetchone()
    assert fetch(
        target,
        "SELECT count(*) FILTER (WHERE raw IS NULL), count(*) FILTER (WHERE raw::text = 'null') "
        "FROM messages",
    ) == [raw_nulls]

    app = Deployment(
        installation.data_dir, DATABASE_URL=conninfo_sa(target), CAMPAIGN_RATE_MPS="20"
    )
    app.start()
    try:
        with _client(app.url, installation.operator_token) as api:  # a token from before
            assert _all_messages(api) == installation.messages
            # The search index is not copied (derived data): PostgreSQL's own is read
            # again by its worker, and a search finds the copied messages meanwhile too.
            word = next(
                w
                for m in installation.messages
                for w in re.findall(r"[^\W\d_]{5,}", m["body"] or "")
            )
            holding = {
                m["id"] for m in installation.messages if word.lower() in (m["body"] or "").lower()
            }
            found = api.get("/api/search", params={"q": word, "limit": 100}).json()["items"]
            assert holding and holding <= {hit["id"] for hit in found}, word
            inbox = api.get("/api/conversations", params={"limit": 100}).json()["items"]
            assert inbox == installation.conversations
            sent = api.post("/api/send-message", json={"to": NEW_CUSTOMER, "body": "Już z PG"})
            assert sent.status_code in (201, 202), sent.text
            assert sent.json()["id"] > max(m["id"] for m in installation.messages)
            thread = api.get("/api/conversations", params={"limit": 100}).json()["items"]
            new = next(c for c in thread if c["participant"] == NEW_CUSTOMER)
            assert new["id"] > max(c["id"] for c in installation.conversations)
        with _client(app.url, installation.admin_token) as admin:
            ai = _ok(admin.get("/api/ai/config")).json()
            assert (ai["api_key_set"], ai["api_key_unreadable"]) == (True, False)
            users = [u["email"] for u in _ok(admin.get("/api/users")).json()["items"]]
            assert "ola@example.com" in users
            audit = _ok(admin.get("/api/audit", params={"limit": 200})).json()["items"]
            assert len(audit) >= counts["audit_log"]
    finally:
        app.stop()


# --- Refusals -------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_target_that_is_not_empty_is_refused_and_left_alone(
    tmp_path: Path, postgres: Postgres
) -> None:
    target = postgres.new_database()
    with psycopg.connect(conninfo(target)) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO customers VALUES (1, 'Zofia')")

    done = copy_cli(cli_env(small_source(tmp_path)), target)

    assert done.returncode == 1
    assert "is not empty" in done.stderr and "1 table (customers)" in done.stderr
    assert "nothing was changed" in done.stderr
    assert_no_password(done)
    assert relations(target) == ["customers"]
    assert fetch(target, "SELECT * FROM customers") == [(1, "Zofia")]


@pytest.mark.e2e
def test_copying_twice_is_refused(tmp_path: Path, postgres: Postgres) -> None:
    env, target = cli_env(small_source(tmp_path)), postgres.new_database()
    url = target.render_as_string(hide_password=False)
    first = subprocess.run(  # the URL from the environment, out of the shell's history
        [*CLI, "db", "copy"], env={**env, "TARGET_DATABASE_URL": url}, capture_output=True
    )
    assert first.returncode == 0, first.stderr
    copied = fetch(target, "SELECT id, body FROM messages ORDER BY id")

    again = copy_cli(env, target)

    assert again.returncode == 1
    # The models' tables, the search index's and alembic_version.
    tables = len(Base.metadata.tables) + len(SEARCH_METADATA.tables) + 1
    assert f"is not empty: schema public holds {tables} tables (alembic_version, " in again.stderr
    assert fetch(target, "SELECT id, body FROM messages ORDER BY id") == copied


@pytest.mark.e2e
def test_an_unreachable_target_is_named_with_its_password_masked(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://relay:{quote(PASSWORD)}@127.0.0.1:{port}/relaydesk"

    done = copy_cli(cli_env(small_source(tmp_path)), url)

    assert done.returncode == 1
    masked = f"postgresql+psycopg://relay:***@127.0.0.1:{port}/relaydesk"
    assert f"cannot connect to the target {masked}" in done.stderr
    assert_no_password(done)


@pytest.mark.e2e
def test_a_source_behind_the_newest_migration_is_refused(
    tmp_path: Path, postgres: Postgres
) -> None:
    target = postgres.new_database()

    done = copy_cli(cli_env(small_source(tmp_path, revision="0009")), target)

    assert done.returncode == 1
    assert "revision 0009" in done.stderr and "run 'relaydesk migrate' first" in done.stderr
    assert relations(target) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/elsewhere.db",
        f"mysql://root:{quote(PASSWORD)}@db.example/relaydesk",
        f"postgresql+asyncpg://root:{quote(PASSWORD)}@db.example/relaydesk",
        f"root:{PASSWORD}@db.example/relaydesk",
    ],
)
def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path, url: str) -> None:
    done = copy_cli(cli_env(small_source(tmp_path)), url)

    assert done.returncode == 1
    assert "the target must be a PostgreSQL URL" in done.stderr
    assert_no_password(done)


@pytest.mark.e2e
def test_without_a_source_database_nothing_is_created(tmp_path: Path, postgres: Postgres) -> None:
    target = postgres.new_database()
    data_dir = tmp_path / "empty"

    done = copy_cli(cli_env(data_dir), target)

    assert done.returncode == 1
    assert f"there is no database at {data_dir / 'app.db'}" in done.stderr
    assert not (data_dir / "app.db").exists()
    assert relations(target) == []


# --- Values, checks and rollbacks (in process) ---------------------------------------


def test_every_kind_of_value_survives_exactly(tmp_path: Path, postgres: Postgres) -> None:
    data_dir = small_source(tmp_path)
    db = data_dir / "app.db"
    tables = Base.metadata.tables
    engine = make_engine(f"sqlite:///{db}")
    settings = {
        "żółw": {"a": [1, 2.5, None, "ż"], "b": {"c": True}},
        "Zebra": 60,  # a JSON column has NUMERIC affinity: SQLite keeps an integer
        "zebra": 1.5,
        "ąb": "tekst",
        "apple": False,
    }
    with engine.begin() as conn:
        for key, value in settings.items():
            conn.execute(insert(tables["settings"]).values(key=key, value=value, is_secret=False))
        conn.execute(
            tables["message_counters"].update().values(count=2**62)  # a big integer
        )
        for provider, model in [
            ("openai", "gpt-4o"),
            ("openai", "Gpt"),
            ("local", "ż"),
            ("a", "b"),
        ]:
            conn.execute(insert(tables["llm_usage"]).values(provider=provider, model=model))
        pacer = insert(tables["send_pacers"])
        conn.execute(pacer.values(sender="+48500000000", next_at=1_767_225_600.123457))
        conn.execute(pacer.values(sender="whatsapp:+48", next_at=0.1))
        conn.execute(insert(tables["assistants"]).values(name="Asia", temperature=1e300))
    engine.dispose()
    body = 'Zażółć\tgęślą\njaźń \\ "cytat" 📦 \u200b'
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE messages SET body = ?, raw = NULL WHERE id = 1", (body,))
        # As relaydesk's untyped binds store an aware datetime (messaging.ingest).
        conn.execute("UPDATE messages SET created_at = '2025-03-30 01:30:00.000001+00:00'")
        conn.execute("UPDATE messages SET updated_at = '2024-02-29 23:59:59' WHERE id = 2")
    target = postgres.new_database(polish=True)  # its own order of text keys differs

    report = dbcopy.copy_database(
        f"sqlite:///{db}", target.render_as_string(hide_password=False), batch_rows=2
    )

    assert not report.failed and report.rows == sum(t.source_rows for t in report.tables)
    with sqlite3.connect(db) as conn:
        stored = dict(conn.execute("SELECT key, value FROM settings").fetchall())
    assert stored["Zebra"] == 60 and stored["zebra"] == 1.5
    expected = {k: v if isinstance(v, str) else str(v) for k, v in stored.items()}
    assert dict(fetch(target, "SELECT key, value::text FROM settings")) == expected
    assert fetch(target, "SELECT count FROM message_counters ORDER BY direction") == [
        (2**62,),
        (2**62,),
    ]
    assert len(fetch(target, "SELECT * FROM llm_usage")) == 4
    pacers = dict(fetch(target, "SELECT sender, next_at FROM send_pacers"))
    assert pacers == {"+48500000000": 1_767_225_600.123457, "whatsapp:+48": 0.1}
    assert fetch(target, "SELECT temperature FROM assistants") == [(1e300,)]
    [(copied_body, raw_is_null, created)] = fetch(
        target, "SELECT body, raw IS NULL, created_at FROM messages WHERE id = 1"
    )
    assert (copied_body, raw_is_null) == (body, True)
    assert created == datetime(2025, 3, 30, 1, 30, 0, 1, tzinfo=UTC)
    assert fetch(target, "SELECT raw::text, updated_at FROM messages WHERE id = 2") == [
        ("null", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC))
    ]
    # The sequences continue after the copied ids.
    assert fetch(target, "SELECT nextval(pg_get_serial_sequence('messages', 'id'))") == [(4,)]
    assert fetch(target, "SELECT nextval(pg_get_serial_sequence('jobs', 'id'))") == [(1,)]
    assert {t.name: t.next_id for t in report.tables}["conversations"] == 2


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE messages SET body = body || ' ' WHERE id = 2", "checksum differs"),
        (
            "UPDATE messages SET created_at = created_at + interval '1 microsecond' WHERE id = 3",
            "checksum differs",
        ),
        ("UPDATE messages SET raw = NULL WHERE id = 1", "checksum differs"),
        ("UPDATE messages SET media = '[ ]' WHERE id = 1", "checksum differs"),
        ("DELETE FROM messages WHERE id = 3", "count differs"),
    ],
)
def test_a_copy_that_does_not_verify_is_rolled_back(
    tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch, tamper: str, problem: str
) -> None:
    """Rows changed on the way (here by SQL run after messages are written) are caught."""
    data_dir = small_source(tmp_path)
    target = postgres.new_database()
    copy_table = copier._copy_table

    def copy_then_tamper(pg: psycopg.Connection[Any], *args: Any) -> None:
        copy_table(pg, *args)
        if args[1].table == "messages":
            pg.execute(tamper.encode())

    monkeypatch.setattr(copier, "_copy_table", copy_then_tamper)  # where _copy_rows finds it

    with pytest.raises(dbcopy.VerificationFailed) as failed:
        dbcopy.copy_database(
            f"sqlite:///{data_dir / 'app.db'}", target.render_as_string(hide_password=False)
        )

    assert [(t.name, t.problem) for t in failed.value.report.failed] == [("messages", problem)]
    assert "the target is empty again" in failed.value.message
    assert relations(target) == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            "UPDATE messages SET body = 'a' || char(0) || 'b' WHERE id = 2",
            ["row id=2", "body holds a NUL character at position 1"],
        ),
        (
            "UPDATE messages SET participant = '+48600100200600100200' WHERE id = 2",
            ["row id=2", "participant is 21 characters long; the column takes 20"],
        ),
        (
            "UPDATE messages SET created_at = 'wczoraj' WHERE id = 3",
            ["row id=3", "created_at is not a date and time: 'wczoraj'"],
        ),
        ("UPDATE messages SET attempts = 'dużo' WHERE id = 1", ["attempts is not an integer"]),
        (
            "UPDATE messages SET num_media = 3000000000 WHERE id = 1",
            ["num_media is 3000000000, beyond the column's 32-bit integers"],
        ),
        (
            "PRAGMA ignore_check_constraints = ON; "
            "UPDATE messages SET status = 'zgubiona' WHERE id = 3",
            ["table messages, row id=3", "violates check constraint", "ck_messages_status"],
        ),
        (
            "UPDATE messages SET media = '[1,' WHERE id = 2",
            ["table messages, row id=2", "invalid input syntax for type json"],
        ),
        (
            "UPDATE messages SET conversation_id = 999 WHERE id = 1",
            ["refer to rows that do not exist", "messages row 1 -> conversations"],
        ),
    ],
)
def test_a_value_postgresql_cannot_hold_stops_the_copy(
    tmp_path: Path, postgres: Postgres, change: str, said: list[str]
) -> None:
    data_dir = small_source(tmp_path)
    with sqlite3.connect(data_dir / "app.db") as conn:
        conn.executescript(change)
    target = postgres.new_database()

    with pytest.raises(dbcopy.CopyError) as refused:
        dbcopy.copy_database(
            f"sqlite:///{data_dir / 'app.db'}", target.render_as_string(hide_password=False)
        )

    for words in said:
        assert words in refused.value.message
    assert PASSWORD not in refused.value.message
    assert relations(target) == []


def test_progress_and_errors_never_show_the_password(postgres: Postgres, tmp_path: Path) -> None:
    data_dir = small_source(tmp_path)
    target = postgres.new_database()
    lines: list[str] = []
    url = target.render_as_string(hide_password=False)
    assert PASSWORD in make_url(url).password  # type: ignore[operator]

    dbcopy.copy_database(f"sqlite:///{data_dir / 'app.db'}", url, progress=lines.append)

    assert any("copying sqlite:///" in line for line in lines)
    assert any(":***@" in line for line in lines)
    assert not any(form in line for line in lines for form in PASSWORD_FORMS)
    with pytest.raises(dbcopy.CopyError) as refused:
        dbcopy.copy_database(f"sqlite:///{data_dir / 'app.db'}", url, progress=lines.append)
    assert ":***@" in refused.value.message
    assert not any(form in refused.value.message for form in PASSWORD_FORMS)


def test_masking_covers_every_spelling_of_the_password() -> None:
    url = dbcopy.target_url(f"postgres://u:{quote('p@ss/Wörd')}@h:5432/db")
    mask = dbcopy.Masker(url, raw=[f"postgres://u:{quote('p@ss/Wörd')}@h/db"])

    assert url.password == "p@ss/Wörd"
    assert dbcopy.shown(url) == "postgresql+psycopg://u:***@h:5432/db"
    for spelling in ("p@ss/Wörd", quote("p@ss/Wörd"), "p%40ss%2FW%C3%B6rd"):
        assert mask(f"x {spelling} y") == "x *** y"


def test_the_copy_is_a_snapshot_of_a_source_being_written(
    tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message stored while the copy runs is not half in it: the copy is the snapshot."""
    db = small_source(tmp_path) / "app.db"
    target = postgres.new_database()
    copy_table = copier._copy_table

    def write_meanwhile(pg: psycopg.Connection[Any], *args: Any) -> None:
        copy_table(pg, *args)
        if args[1].table == "contacts":  # before messages are read
            with sqlite3.connect(db) as app:  # the app, storing a webhook
                app.execute(
                    "INSERT INTO messages (direction, channel, from_addr, to_addr, participant, "
                    "conversation_id, body, media, num_media, status, num_segments, source, "
                    "attempts, created_at, updated_at) VALUES ('inbound', 'sms', ?, "
                    "'+48500000000', ?, 1, 'Później', '[]', 0, 'received', 1, 'customer', 0, "
                    "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')",
                    (ANNA, ANNA),
                )

    monkeypatch.setattr(copier, "_copy_table", write_meanwhile)  # where _copy_rows finds it

    report = dbcopy.copy_database(f"sqlite:///{db}", target.render_as_string(hide_password=False))

    assert {t.name: t.copied for t in report.tables}["messages"] == 3
    assert fetch(target, "SELECT count(*) FROM messages") == [(3,)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (4,)


def test_postgresql_to_postgresql(tmp_path: Path, postgres: Postgres) -> None:
    db = small_source(tmp_path) / "app.db"
    first, second = postgres.new_database(), postgres.new_database()
    dbcopy.copy_database(f"sqlite:///{db}", first.render_as_string(hide_password=False))

    report = dbcopy.copy_database(
        conninfo_sa(first), second.render_as_string(hide_password=False), batch_rows=2
    )

    assert not report.failed and report.rows > 0
    every = "SELECT id, body, raw::text, created_at FROM messages ORDER BY id"
    assert fetch(second, every) == fetch(first, every)
