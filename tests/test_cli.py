"""The `relaydesk` command, run as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaydesk.cli import FIRST_ADMIN_EMAIL
from relaydesk.core.config import sandbox_credentials
from tests.conftest import BACKEND, wait_for
from tests.pgserver import free_port
from tests.processes import database_url

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

RELAYDESK = [sys.executable, "-m", "relaydesk.cli"]


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh data directory (and, on PostgreSQL, a fresh database) for one test."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    env["DATA_DIR"] = str(tmp_path / "data")
    env["LOG_LEVEL"] = "WARNING"
    dbname = None
    if BACKEND == "postgresql":
        import psycopg

        base = os.environ["DATABASE_URL"]
        dbname = "cli_" + secrets.token_hex(4)
        admin = (
            base.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {dbname}")
        env["DATABASE_URL"] = base.rsplit("/", 1)[0] + "/" + dbname
    yield env
    if dbname:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")


def bearer(env: dict[str, str], name: str) -> dict[str, str]:
    """An Authorization header with a new token made by `relaydesk token create`."""
    token = run(env, "token", "create", name).stdout.strip().splitlines()[-1]
    return {"Authorization": f"Bearer {token}"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELAYDESK, *args], env=env, capture_output=True, text=True, timeout=120)


def test_migrate_then_user_and_token(cli_env: dict[str, str]) -> None:
    assert run(cli_env, "migrate").returncode == 0
    made = run(
        cli_env,
        "user",
        "create",
        "--email",
        "Ola@Example.com",
        "--password",
        "długie-hasło-123",
        "--role",
        "admin",
    )
    assert made.returncode == 0, made.stderr
    assert "ola@example.com" in made.stdout
    again = run(cli_env, "user", "create", "--email", "ola@example.com", "--password", "12345678")
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    short = run(cli_env, "user", "create", "--email", "x@example.com", "--password", "short")
    assert short.returncode != 0
    assert "at least 8 characters" in short.stderr
    token = run(cli_env, "token", "create", "crm")
    assert token.returncode == 0
    assert token.stdout.strip().splitlines()[-1].startswith("rd_")


def test_a_named_user_and_a_token_that_acts_as_them(cli_env: dict[str, str]) -> None:
    assert run(cli_env, "migrate").returncode == 0
    made = run(
        cli_env,
        "user",
        "create",
        "--email",
        "anna@example.com",
        "--password",
        "x" * 12,
        "--name",
        "Anna",
    )
    assert made.returncode == 0, made.stderr
    renamed = run(cli_env, "user", "rename", "--email", "anna@example.com", "--name", "Anna N.")
    assert renamed.returncode == 0, renamed.stderr
    listing = run(cli_env, "user", "list").stdout
    assert "Anna N." in listing
    token = run(cli_env, "token", "create", "anna-crm", "--user", "ANNA@example.com")
    assert token.returncode == 0, token.stderr
    assert "acting as anna@example.com" in token.stdout
    above = run(cli_env, "token", "create", "x", "--role", "admin", "--user", "anna@example.com")
    assert above.returncode != 0 and "cannot have the role admin" in above.stderr
    nobody = run(cli_env, "token", "create", "x", "--user", "nobody@example.com")
    assert nobody.returncode != 0 and "no user with email" in nobody.stderr
    assert "Traceback" not in above.stderr + nobody.stderr


def test_invalid_configuration_is_one_readable_line(cli_env: dict[str, str]) -> None:
    for name, value, words in [
        ("PORT", "eighty", "PORT"),
        ("DEFAULT_REGION", "XX", "two-letter country code"),
        ("PUBLIC_BASE_URL", "relay.example.com", "http://"),
        ("TWILIO_ACCOUNT_SID", "nope", "Account SID"),
    ]:
        result = run({**cli_env, name: value}, "migrate")
        assert result.returncode != 0
        assert words in result.stderr
        assert "Traceback" not in result.stderr
    live = run({**cli_env, "TWILIO_MODE": "live"}, "migrate")
    assert "TWILIO_ACCOUNT_SID" in live.stderr


def test_backup_and_restore_answer_in_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run(cli_env, "migrate").returncode == 0
    assert run(cli_env, "token", "create", "kept").returncode == 0
    for args, words in [
        (("backup", str(tmp_path / "copy.db")), "must end in .tar.gz"),
        (("restore", str(tmp_path / "nothing.zip")), "does not end in .tar.gz"),
    ]:
        wrong = run(cli_env, *args)
        assert wrong.returncode != 0
        assert words in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    target = tmp_path / "backups" / "copy.tar.gz"
    result = run(cli_env, "backup", str(target))
    assert result.returncode == 0, result.stderr
    assert f"backup written to {target}" in result.stdout
    again = run(cli_env, "backup", str(target))
    assert again.returncode != 0
    assert "already exists" in again.stderr
    busy = run(cli_env, "restore", str(target))  # into its own data directory
    assert busy.returncode != 0
    assert f"DATA_DIR {cli_env['DATA_DIR']} is not empty" in busy.stderr
    assert "Traceback" not in busy.stderr

    fresh = {**cli_env, "DATA_DIR": str(tmp_path / "fresh")}
    if BACKEND == "postgresql":
        fresh["DATABASE_URL"] = database_url(tmp_path / "fresh")
    restored = run(fresh, "restore", str(target))
    assert restored.returncode == 0, restored.stderr
    assert "files:" in restored.stdout
    listed = run(fresh, "token", "list")
    assert "kept" in listed.stdout


class Proc:
    """A background relaydesk process, stopped at the end of the test."""

    def __init__(self, env: dict[str, str], *args: str, stdin: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [*RELAYDESK, *args],
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


def wait_healthy(url: str, proc: Proc) -> None:
    def up() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.stop()}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, what=url)


def test_serve_creates_first_admin_and_answers_with_a_cli_token(cli_env: dict[str, str]) -> None:
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    port = free_port()
    env = {**cli_env, "PORT": str(port), "SANDBOX_STATUS_DELAY_MS": "0"}
    serve = Proc(env, "serve")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", serve)
        headers = bearer(env, "e2e")
        sent = httpx.post(
            f"http://127.0.0.1:{port}/api/send-message",
            headers=headers,
            json={"to": "+48600100500", "body": "z procesu"},
            timeout=30,
        )
        assert sent.status_code == 201, sent.text

        def delivered() -> bool:
            page = httpx.get(f"http://127.0.0.1:{port}/api/messages", headers=headers).json()
            return page["items"][0]["status"] == "delivered"

        wait_for(delivered, what="delivery through the in-process worker and emulator")
    finally:
        output = serve.stop()
    assert "admin@relaydesk.local" in output
    assert "password:" in output


def external_sandbox(
    cli_env: dict[str, str], app_port: int, sandbox_port: int, **knobs: str
) -> tuple[Proc, dict[str, str]]:
    """Start `relaydesk sandbox` as its own process; returns it and the app's environment.

    The emulator keeps its own DATA_DIR, so it is given the app's account in the
    environment (with TWILIO_MODE, which an Account SID alone would switch to live).
    """
    sandbox_env = {
        **cli_env,
        "DATA_DIR": cli_env["DATA_DIR"] + "-twilio",
        "SANDBOX_STATUS_DELAY_MS": "0",
        "TWILIO_MODE": "sandbox",
        "TWILIO_ACCOUNT_SID": sandbox_auth(cli_env)[0],
        **knobs,
    }
    sandbox = Proc(
        sandbox_env,
        "sandbox",
        "--port",
        str(sandbox_port),
        "--webhook-base",
        f"http://127.0.0.1:{app_port}",
    )
    app_env = {
        **cli_env,
        "PORT": str(app_port),
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
    }
    return sandbox, app_env


def sandbox_auth(cli_env: dict[str, str]) -> tuple[str, str]:
    """The sandbox account of the app on `cli_env`'s DATA_DIR (its token set by the tests)."""
    generated = sandbox_credentials(Path(cli_env["DATA_DIR"]))
    return generated.account_sid, cli_env.get("TWILIO_AUTH_TOKEN") or generated.auth_token


def test_several_web_processes_refuse_the_embedded_sandbox(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "serve", "--workers", "2")
    assert result.returncode != 0
    assert "relaydesk sandbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_standalone_sandbox_process(cli_env: dict[str, str]) -> None:
    """The emulator as its own process, reached through TWILIO_API_BASE_URL."""
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    app_port, sandbox_port = free_port(), free_port()
    sandbox, app_env = external_sandbox(cli_env, app_port, sandbox_port)
    # Two web processes and one background worker process, as when scaling out.
    serve = Proc(app_env, "serve", "--workers", "2")
    try:
        wait_healthy(f"http://127.0.0.1:{app_port}/health", serve)
        # The app's emulator routes are not mounted when an external sandbox is used.
        assert httpx.get(f"http://127.0.0.1:{app_port}/sandbox/phone/messages").status_code == 404
        headers = bearer(app_env, "e2e")
        sent = httpx.post(
            f"http://127.0.0.1:{app_port}/api/send-message",
            headers=headers,
            json={"to": "+48600100501", "body": "przez osobny sandbox"},
            timeout=30,
        )
        assert sent.status_code == 201, sent.text
        auth = sandbox_auth(cli_env)
        injected = httpx.post(
            f"http://127.0.0.1:{sandbox_port}/sandbox/phone/messages",
            auth=auth,
            json={"from": "+48600100501", "body": "odpowiedź"},
        )
        assert injected.status_code == 201, injected.text
        assert injected.json()["webhook_status"] == 200

        def both_sides() -> bool:
            page = httpx.get(f"http://127.0.0.1:{app_port}/api/messages", headers=headers).json()
            statuses = {m["direction"]: m["status"] for m in page["items"]}
            return statuses == {"inbound": "received", "outbound": "delivered"}

        wait_for(both_sides, what="inbound and delivered outbound via the external sandbox")

        # The supervisor replaces a web process that dies.
        first = web_processes(serve.proc.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        wait_for(
            lambda: (
                len(web_processes(serve.proc.pid)) == 2
                and first[0] not in web_processes(serve.proc.pid)
            ),
            what="a replacement web process",
        )
        wait_healthy(f"http://127.0.0.1:{app_port}/health", serve)
    finally:
        serve.stop()
        sandbox.stop()


def web_processes(parent: int) -> list[int]:
    """The spawned web processes under a `serve --workers N` supervisor."""
    children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    pids = []
    for pid in children.stdout.split():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in cmdline:
            pids.append(int(pid))
    return sorted(pids)


def test_server_killed_mid_send_neither_loses_nor_repeats(cli_env: dict[str, str]) -> None:
    """kill -9 while Twilio is accepting the message; after a restart it is there once."""
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    app_port, sandbox_port = free_port(), free_port()
    auth = sandbox_auth(cli_env)
    # Twilio (the standalone emulator) stays up; it answers 3 s after taking a message.
    sandbox, app_env = external_sandbox(cli_env, app_port, sandbox_port, SANDBOX_LATENCY_MS="3000")
    twilio_store = Path(cli_env["DATA_DIR"] + "-twilio") / "sandbox.db"
    app_env["SEND_CLAIM_LEASE_SECONDS"] = "1"
    serve = Proc(app_env, "serve")
    api = f"http://127.0.0.1:{app_port}"
    try:
        wait_healthy(f"{api}/health", serve)
        headers = bearer(app_env, "crash")
        import threading

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{api}/api/send-message",
                    headers=headers,
                    timeout=30,
                    json={"to": "+48600100800", "body": "tylko raz"},
                )

        threading.Thread(target=send, daemon=True).start()

        listing = f"http://127.0.0.1:{sandbox_port}/2010-04-01/Accounts/{auth[0]}/Messages.json"

        def at_twilio() -> list[dict[str, Any]]:
            found = httpx.get(listing, params={"To": "+48600100800"}, auth=auth, timeout=30).json()
            return list(found["messages"])

        def held_by_twilio() -> bool:
            # Read the emulator's own store: its API answers only after the latency.
            if not twilio_store.exists():
                return False
            with sqlite3.connect(twilio_store) as conn:
                return conn.execute("SELECT count(*) FROM messages").fetchone()[0] > 0

        def unanswered() -> bool:
            if not held_by_twilio():
                return False
            items = httpx.get(f"{api}/api/messages", headers=headers).json()["items"]
            return bool(items) and items[0]["sid"] is None

        # Twilio has the message but relaydesk has no answer yet: the worst moment to die.
        wait_for(unanswered, what="Twilio to hold the message before answering")
        serve.proc.kill()  # SIGKILL: no clean-up of any kind
        serve.proc.wait(timeout=10)
        remote = httpx.get(listing, params={"To": "+48600100800"}, auth=auth, timeout=30).json()[
            "messages"
        ]
        serve = Proc(app_env, "serve")
        wait_healthy(f"{api}/health", serve)

        def recovered() -> dict[str, Any] | None:
            items = httpx.get(f"{api}/api/messages", headers=headers).json()["items"]
            return items[0] if items and items[0]["sid"] else None

        message = wait_for(recovered, timeout=30, what="the restarted server to recover")
        assert message["sid"] == remote[0]["sid"]
        assert message["status"] == "delivered"  # Twilio's status, callbacks were lost
        assert len(at_twilio()) == 1  # not sent twice
    finally:
        serve.stop()
        sandbox.stop()


def test_server_killed_mid_template_send_neither_loses_nor_repeats(
    cli_env: dict[str, str],
) -> None:
    """The same for a WhatsApp template: Twilio lists it with the text it rendered."""
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    app_port, sandbox_port = free_port(), free_port()
    auth = sandbox_auth(cli_env)
    sandbox, app_env = external_sandbox(cli_env, app_port, sandbox_port, SANDBOX_LATENCY_MS="3000")
    twilio_store = Path(cli_env["DATA_DIR"] + "-twilio") / "sandbox.db"
    app_env["SEND_CLAIM_LEASE_SECONDS"] = "1"
    serve = Proc(app_env, "serve")
    api = f"http://127.0.0.1:{app_port}"
    customer = "whatsapp:+48600100801"
    try:
        wait_healthy(f"{api}/health", serve)
        headers = bearer(app_env, "crash")
        import threading

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    f"{api}/api/send-message",
                    headers=headers,
                    timeout=30,
                    json={
                        "to": customer,
                        "content_sid": "HX4b4adba77b8189f09cc4069f16415ea0",
                        "content_variables": {"1": "Ania"},
                    },
                )

        threading.Thread(target=send, daemon=True).start()
        listing = f"http://127.0.0.1:{sandbox_port}/2010-04-01/Accounts/{auth[0]}/Messages.json"

        def at_twilio() -> list[dict[str, Any]]:
            found = httpx.get(listing, params={"To": customer}, auth=auth, timeout=30).json()
            return list(found["messages"])

        def unanswered() -> bool:
            if not twilio_store.exists():
                return False
            with sqlite3.connect(twilio_store) as conn:
                if conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0:
                    return False
            items = httpx.get(f"{api}/api/messages", headers=headers).json()["items"]
            return bool(items) and items[0]["sid"] is None

        wait_for(unanswered, what="Twilio to hold the template send before answering")
        serve.proc.kill()  # SIGKILL between Twilio taking the message and its answer
        serve.proc.wait(timeout=10)
        serve = Proc(app_env, "serve")
        wait_healthy(f"{api}/health", serve)

        def recovered() -> dict[str, Any] | None:
            items = httpx.get(f"{api}/api/messages", headers=headers).json()["items"]
            return items[0] if items and items[0]["sid"] else None

        message = wait_for(recovered, timeout=30, what="the restarted server to recover")
        remote = at_twilio()
        assert len(remote) == 1, [m["body"] for m in remote]  # not sent twice
        assert message["sid"] == remote[0]["sid"]
        # What the customer received, as Twilio rendered it, is what the operator reads.
        assert "Ania" in remote[0]["body"] and message["body"] == remote[0]["body"]
    finally:
        serve.stop()
        sandbox.stop()


def signs_in(env: dict[str, str], email: str, password: str) -> bool:
    """Whether the panel's password check accepts these credentials in `env`'s database."""
    code = (
        "import sys\n"
        "from relaydesk.auth.service import authenticate_password\n"
        "from relaydesk.core.db import session_scope\n"
        "with session_scope() as s:\n"
        "    print(authenticate_password(s, sys.argv[1], sys.argv[2]) is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, email, password],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


class Terminal:
    """A relaydesk process on a pseudo-terminal, answered like a person at a keyboard."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.master, slave = pty.openpty()
        # A new session has no controlling terminal, so getpass uses the pty on stdin
        # instead of whatever terminal pytest itself runs in.
        self.proc = subprocess.Popen(
            [*RELAYDESK, *args],
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.output = ""
        self.seen = 0
        self._lock = threading.Lock()
        # Keep draining the terminal so that the process never blocks on a full buffer.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO once the process closed its side
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk.decode(errors="replace")

    def expect(self, text: str) -> None:
        """Wait until `text` appears after what was already expected."""

        def shown() -> bool:
            with self._lock:
                at = self.output.find(text, self.seen)
                if at >= 0:
                    self.seen = at + len(text)
                    return True
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited; it wrote:\n{self.output}")
            return False

        wait_for(shown, timeout=60, what=repr(text))

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self.master)
        return self.output


def test_first_admin_is_asked_for_in_a_terminal(cli_env: dict[str, str]) -> None:
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    port = free_port()
    term = Terminal({**cli_env, "PORT": str(port)}, "serve")
    try:
        term.expect("Administrator email [admin@relaydesk.local]: ")
        term.type("not an email")
        term.expect("is not an email address; try again.")
        term.expect("Administrator email [admin@relaydesk.local]: ")
        term.type("  Boss@Example.com")
        # The space after the colon is written once echo is off: typing earlier is lost.
        term.expect("Password: ")
        term.type("short")
        term.expect("at least 8 characters; try again.")
        term.expect("Password: ")
        term.type("first-try-secret")
        term.expect("Repeat the password: ")
        term.type("other-try-secret")
        term.expect("The two passwords differ; try again.")
        term.expect("Password: ")
        term.type("the-real-secret")
        term.expect("Repeat the password: ")
        term.type("the-real-secret")
        term.expect("Created the administrator boss@example.com")
        term.expect(f"relaydesk panel: http://127.0.0.1:{port}/")

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="the server")
    finally:
        output = term.stop()
    for typed in ("the-real-secret", "first-try-secret", "short"):
        assert typed not in output  # hidden input
    assert "shown only this once" not in output  # no generated password is printed
    users = run(cli_env, "user", "list")
    assert users.returncode == 0, users.stderr
    assert len(users.stdout.strip().splitlines()) == 2
    assert re.search(r"boss@example\.com +- +admin", users.stdout), users.stdout
    assert signs_in(cli_env, "boss@example.com", "the-real-secret")


def test_first_admin_gets_a_printed_password_without_a_terminal(cli_env: dict[str, str]) -> None:
    """Only stdin is a terminal (output piped to a log): nobody could answer a prompt."""
    if BACKEND == "postgresql":
        assert run(cli_env, "migrate").returncode == 0
    port = free_port()
    master, slave = pty.openpty()
    serve = Proc({**cli_env, "PORT": str(port)}, "serve", stdin=slave)
    os.close(slave)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", serve)
    finally:
        output = serve.stop()
        os.close(master)
    assert "Administrator email" not in output
    password = output.split("password:", 1)[1].split()[0]
    assert signs_in(cli_env, FIRST_ADMIN_EMAIL, password)
    assert not signs_in(cli_env, FIRST_ADMIN_EMAIL, password + "x")


def test_token_list_and_revoke(cli_env: dict[str, str]) -> None:
    assert run(cli_env, "migrate").returncode == 0
    crm = bearer(cli_env, "crm")["Authorization"].removeprefix("Bearer ")
    run(cli_env, "token", "create", "backup-script", "--role", "viewer")
    listing = run(cli_env, "token", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.strip().splitlines()
    assert header.split() == ["ID", "NAME", "PREFIX", "ROLE", "CREATED", "LAST", "USED", "REVOKED"]
    assert [r.split()[1] for r in rows] == ["backup-script", "crm"]  # newest first
    assert crm not in listing.stdout
    assert crm[:10] in listing.stdout
    crm_id = rows[1].split()[0]
    revoked = run(cli_env, "token", "revoke", crm_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked token" in revoked.stdout
    assert run(cli_env, "token", "revoke", crm_id).returncode == 0  # already revoked: fine
    after = run(cli_env, "token", "list").stdout.strip().splitlines()
    assert after[2].split()[1] == "crm"
    assert after[1].endswith("-")  # backup-script: not revoked
    assert not after[2].endswith("-")  # crm: revoked at a time
    for args, words in [
        (("token", "revoke", "424242"), "token 424242 does not exist"),
        (("token", "revoke", "abc"), "is not a valid integer"),
    ]:
        failed = run(cli_env, *args)
        assert failed.returncode != 0
        assert words in failed.stderr
        assert "Traceback" not in failed.stderr


def test_user_list_set_password_and_disable(cli_env: dict[str, str]) -> None:
    assert run(cli_env, "migrate").returncode == 0
    for email, role in [("boss@example.com", "admin"), ("ola@example.com", "operator")]:
        made = run(
            cli_env, "user", "create", "--email", email, "--password", "first-pass", "--role", role
        )
        assert made.returncode == 0, made.stderr
    listing = run(cli_env, "user", "list").stdout.strip().splitlines()
    assert listing[0].split() == [
        "ID",
        "EMAIL",
        "NAME",
        "ROLE",
        "ACTIVE",
        "LAST",
        "LOGIN",
        "CREATED",
    ]
    assert [r.split()[1:5] for r in listing[1:]] == [
        ["boss@example.com", "-", "admin", "yes"],
        ["ola@example.com", "-", "operator", "yes"],
    ]

    changed = run(
        cli_env, "user", "set-password", "--email", "Ola@Example.com", "--password", "second-pass"
    )
    assert changed.returncode == 0, changed.stderr
    assert signs_in(cli_env, "ola@example.com", "second-pass")
    assert not signs_in(cli_env, "ola@example.com", "first-pass")
    # Without --password it is asked for twice (here from a pipe, as in a script).
    asked = subprocess.run(
        [*RELAYDESK, "user", "set-password", "--email", "ola@example.com"],
        env=cli_env,
        input="third-pass\nthird-pass\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert asked.returncode == 0, asked.stderr
    assert signs_in(cli_env, "ola@example.com", "third-pass")

    disabled = run(cli_env, "user", "disable", "--email", "ola@example.com")
    assert disabled.returncode == 0, disabled.stderr
    assert not signs_in(cli_env, "ola@example.com", "third-pass")
    assert run(cli_env, "user", "list").stdout.strip().splitlines()[2].split()[4] == "no"

    for args, words in [
        (("user", "disable", "--email", "boss@example.com"), "last active administrator"),
        (("user", "disable", "--email", "nobody@example.com"), "no user with email"),
        (("user", "set-password", "--email", "boss@example.com", "--password", "short"), "8"),
    ]:
        failed = run(cli_env, *args)
        assert failed.returncode != 0
        assert words in failed.stderr
        assert "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    assert signs_in(cli_env, "boss@example.com", "first-pass")


def test_server_stops_promptly_with_a_live_update_stream_open(cli_env: dict[str, str]) -> None:
    """An open panel tab (its event stream never ends) must not keep `serve` from stopping."""
    assert run(cli_env, "migrate").returncode == 0
    email, password = "ops@example.com", "a long password"
    created = run(cli_env, "user", "create", "--email", email, "--password", password)
    assert created.returncode == 0, created.stderr
    port = free_port()
    serve = Proc({**cli_env, "PORT": str(port)}, "serve")
    base = f"http://127.0.0.1:{port}"
    opened = threading.Event()

    def listen(cookies: httpx.Cookies) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", f"{base}/live", cookies=cookies, timeout=60) as stream,
        ):
            for _ in stream.iter_lines():
                opened.set()

    try:
        wait_healthy(f"{base}/health", serve)
        with httpx.Client(base_url=base, timeout=30) as client:
            form = client.get("/login").text
            token = form.split('name="login_csrf" value="')[1].split('"')[0]
            signed = client.post(
                "/login", data={"email": email, "password": password, "login_csrf": token}
            )
            assert signed.status_code == 303
            listener = threading.Thread(target=listen, args=(client.cookies,), daemon=True)
            listener.start()
            assert opened.wait(30), "the live stream did not open"
        serve.proc.terminate()
        # uvicorn would wait for the stream forever; serve bounds the graceful shutdown.
        # (uvicorn re-raises the signal once it has shut down cleanly.)
        assert serve.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        serve.stop()
