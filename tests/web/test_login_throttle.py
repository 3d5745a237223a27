"""Password guessing is slowed where it comes from, and never locks the real user out.

Failures count per address and account together: after five from one address for one
email, that address waits 1, 2, 4 … minutes (at most an hour) for that email. An
address failing across many emails is stopped for a while (spraying). An account
failing from many addresses at once slows the addresses that failed, never one with
no recent failure. Throttling is in the audit log, and the panel says how long to
wait. The test client on loopback plays a trusted proxy, so X-Forwarded-For gives
each request the address it stands for (as behind Caddy).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from relaydesk.auth import sessions
from tests.conftest import LiveServer
from tests.web.conftest import PASSWORD, MakeUser, sign_in

ATTACKER = "198.51.100.66"
USER = "203.0.113.10"


class Clock:
    """The time the sign-in throttle sees; moved by the test, never waited for."""

    def __init__(self) -> None:
        self.now = sessions.utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(sessions, "utcnow", found)
    return found


@pytest.fixture
def browsers(server: LiveServer) -> Iterator[Any]:
    """Clients that reach the server from a given address (through the trusted proxy)."""
    opened: list[httpx.Client] = []

    def from_address(address: str, language: str = "en") -> httpx.Client:
        client = httpx.Client(
            base_url=server.url,
            timeout=30,
            follow_redirects=False,
            headers={"X-Forwarded-For": address, "Accept-Language": language},
        )
        opened.append(client)
        return client

    yield from_address
    for client in opened:
        client.close()


def wait_minutes(answer: httpx.Response) -> int:
    assert answer.status_code == 429, answer.text
    found = re.search(r"Try again in (\d+) min", answer.text)
    assert found, answer.text
    assert int(answer.headers["retry-after"]) > 0
    return int(found.group(1))


def audit(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(
        "/api/audit", params={"action": "auth.login_throttled"}
    ).json()["items"]
    return items


def test_an_attacker_elsewhere_cannot_lock_the_real_user_out(
    browsers: Any, make_user: MakeUser, clock: Clock
) -> None:
    email = make_user("admin")
    attacker = browsers(ATTACKER)
    for _ in range(5):
        assert sign_in(attacker, email, "guess").status_code == 401
    for _ in range(5):
        assert sign_in(attacker, email, "guess").status_code == 429
    assert sign_in(attacker, email, PASSWORD).status_code == 429  # right or wrong: no answer

    real = browsers(USER)
    assert sign_in(real, email, PASSWORD).status_code == 303
    assert real.get("/messages").status_code == 200
    # The real user's sign-in forgets only the real user's failures.
    assert sign_in(attacker, email, "guess").status_code == 429


def test_failures_from_one_address_wait_one_two_four_minutes(
    browsers: Any, make_user: MakeUser, clock: Clock, api: httpx.Client
) -> None:
    email = make_user("operator")
    client = browsers(ATTACKER)
    for _ in range(5):
        assert sign_in(client, email, "guess").status_code == 401
    assert wait_minutes(sign_in(client, email, PASSWORD)) == 1
    clock.advance(seconds=61)
    assert sign_in(client, email, "guess").status_code == 401  # the sixth failure
    assert wait_minutes(sign_in(client, email, "guess")) == 2
    clock.advance(seconds=121)
    assert sign_in(client, email, "guess").status_code == 401
    assert wait_minutes(sign_in(client, email, "guess")) == 4
    clock.advance(minutes=5)
    assert sign_in(client, email, PASSWORD).status_code == 303  # waited: the password works

    entries = audit(api)
    assert [e["details"]["seconds"] for e in reversed(entries)] == [60, 120, 240]
    assert {e["details"]["rule"] for e in entries} == {"address+account"}
    assert {e["details"]["address"] for e in entries} == {ATTACKER}
    assert {e["details"]["email"] for e in entries} == {email}


def test_the_delay_stops_growing_at_an_hour_and_is_forgotten_after_a_day(
    browsers: Any, make_user: MakeUser, clock: Clock
) -> None:
    email = make_user("operator")
    client = browsers(ATTACKER)
    for n in range(12):
        if n:
            clock.advance(hours=1, seconds=1)  # every wait so far has passed
        assert sign_in(client, email, "guess").status_code == 401
    assert wait_minutes(sign_in(client, email, "guess")) == 60
    clock.advance(hours=25)
    assert sign_in(client, email, PASSWORD).status_code == 303


def test_one_address_failing_across_many_accounts_is_stopped(
    browsers: Any, make_user: MakeUser, clock: Clock
) -> None:
    email = make_user("operator")
    sprayer = browsers(ATTACKER)
    for n in range(sessions.MAX_FAILURES_PER_ADDRESS):
        assert sign_in(sprayer, f"someone{n}@example.com", "Summer2025!").status_code == 401
    assert wait_minutes(sign_in(sprayer, email, PASSWORD)) == 15
    assert sign_in(browsers(USER), email, PASSWORD).status_code == 303
    clock.advance(minutes=16)
    assert sign_in(sprayer, email, PASSWORD).status_code == 303


def test_an_account_attacked_from_many_addresses_only_slows_addresses_that_failed(
    browsers: Any, make_user: MakeUser, clock: Clock, api: httpx.Client
) -> None:
    from relaydesk.auth.models import LoginFailure
    from relaydesk.core.db import session_scope

    email = make_user("admin")
    # A botnet's guesses, one per address, already made (each a real failed sign-in).
    with session_scope() as session:
        for n in range(sessions.ACCOUNT_UNDER_ATTACK):
            session.add(LoginFailure(email=email, ip=f"192.0.2.{n + 1}", at=clock.now))
    bot = browsers("192.0.2.7")
    assert wait_minutes(sign_in(bot, email, "guess")) == 1
    assert sign_in(browsers(USER), email, PASSWORD).status_code == 303  # a clean address
    typo = browsers("203.0.113.99")
    assert sign_in(typo, email, "typo").status_code == 401  # a clean address may fail once…
    assert wait_minutes(sign_in(typo, email, PASSWORD)) == 1  # …then waits a minute
    clock.advance(seconds=61)
    assert sign_in(typo, email, PASSWORD).status_code == 303
    assert any(e["details"]["rule"] == "account" for e in audit(api))


def test_addresses_in_one_ipv6_64_count_as_one(
    browsers: Any, make_user: MakeUser, clock: Clock
) -> None:
    email = make_user("operator")
    for n in range(5):
        assert sign_in(browsers(f"2001:db8:7:1::{n + 1}"), email, "guess").status_code == 401
    assert wait_minutes(sign_in(browsers("2001:db8:7:1::99"), email, PASSWORD)) == 1
    assert sign_in(browsers("2001:db8:7:2::1"), email, PASSWORD).status_code == 303


def test_the_wait_is_said_in_polish(browsers: Any, make_user: MakeUser, clock: Clock) -> None:
    email = make_user("operator")
    client = browsers(ATTACKER, "pl-PL,pl;q=0.9")
    for _ in range(5):
        sign_in(client, email, "guess")
    answer = sign_in(client, email, "guess")
    assert answer.status_code == 429
    assert "Spróbuj ponownie za 1 min" in answer.text


def test_an_email_with_a_nul_byte_is_a_wrong_sign_in_not_an_error(
    browsers: Any, make_user: MakeUser
) -> None:
    email = make_user("operator")
    client = browsers(ATTACKER)
    for bad in (email + "\x00", "\x00", "a\r\nb@example.com"):
        answer = sign_in(client, bad, PASSWORD)
        assert answer.status_code == 401, answer.text
    assert sign_in(client, email, PASSWORD).status_code == 303
