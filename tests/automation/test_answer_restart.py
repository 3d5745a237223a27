"""The real `relaydesk serve` killed (SIGKILL) while the model writes an answer, and
started again on the same data (e2e: SQLite or PostgreSQL).

The run was claimed by the killed process. It must not wait for its lease (three
minutes by default, kept here): the restarted server sees that the claiming process is
gone and answers at once, exactly once at the emulator, and the runs API then says so.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import AUTH_TOKEN
from tests.fakes.openai import FakeOpenAI
from tests.processes import ACCOUNT_SID, Deployment, wait_until

pytestmark = pytest.mark.e2e

CUSTOMER = "+48600700001"


def emulator_api(deployment: Deployment) -> httpx.Client:
    """The standalone emulator's own API (its settings), as the account's owner."""
    return httpx.Client(
        base_url=deployment.sandbox_base, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30
    )


def set_latency(twilio: httpx.Client, ms: int) -> None:
    """How long Twilio (the emulator) takes to reply to a Messages.create it took."""
    assert twilio.put("/sandbox/config", json={"latency_ms": ms}).is_success


def taken_by_twilio(data_dir: Path, to: str | None = None) -> int:
    """How many of our messages the emulator took (stored), replied to or not yet."""
    query = "SELECT count(*) FROM messages WHERE direction != 'inbound'"
    args: tuple[str, ...] = ()
    if to is not None:
        query, args = query + " AND to_addr = ?", (to,)
    with sqlite3.connect(f"file:{data_dir / 'sandbox.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute(query, args).fetchone()[0])


def answer_sids(deployment: Deployment, customers: list[str]) -> dict[str, list[str]]:
    """The Twilio SIDs of the answers each customer has, as the messages API shows them."""
    with deployment.client() as api:
        found = api.get("/api/messages", params={"direction": "outbound", "limit": 100})
    assert found.status_code == 200, found.text
    sids: dict[str, list[str]] = {number: [] for number in customers}
    for m in found.json()["items"]:
        if m["sid"]:
            sids[m["to"]].append(m["sid"])
    return sids


def test_an_answer_cut_off_by_a_kill_comes_right_after_the_restart(tmp_path: Path) -> None:
    asked = threading.Event()
    release = threading.Event()
    model = FakeOpenAI()

    def reply(body: dict[str, Any]) -> str:
        if not asked.is_set():
            asked.set()
            release.wait(60)  # the server that asked is killed meanwhile
        return "Tak, zdążymy na jutro."

    model.reply_with(reply)
    model.start()
    deployment = Deployment(tmp_path, LLM_ALLOW_PRIVATE_NETWORKS="true")
    try:
        deployment.start()
        deployment.answer_with_ai(model.base_url)
        deployment.customer_writes(CUSTOMER, "Czy zdążycie na jutro?")
        wait_until(asked.is_set, 60, "the model to be asked", deployment)
        deployment.kill()
        release.set()  # the model answers a process that is gone
        deployment.start()
        # Well inside the three-minute lease the killed process left behind.
        wait_until(
            lambda: deployment.sent_to()[CUSTOMER], 60, "the answer after the restart", deployment
        )
        with deployment.client() as api:
            [run] = api.get("/api/automation/runs", params={"participant": CUSTOMER}).json()
        sent = [m for m in deployment.emulator_messages() if str(m.to) == CUSTOMER]
    finally:
        deployment.stop()
        release.set()
        model.stop()
    assert [str(m.body) for m in sent] == ["Tak, zdążymy na jutro."]
    assert (run["state"], run["outcome"]) == ("done", "ai")
    assert len(model.requests) == 2  # asked again once, by the restarted server


def test_an_answer_twilio_took_while_the_server_was_killed_is_not_sent_again(
    tmp_path: Path,
) -> None:
    """The answer is stored already claimed for its delivery and handed to Twilio in the
    same thread. Killed after Twilio (the emulator, its own process as Twilio is) took
    it but before Twilio's reply came back, the restarted server asks Twilio and records
    the message it finds instead of sending a second one."""
    deployment = Deployment(tmp_path, standalone_sandbox=True)
    twilio = emulator_api(deployment)

    try:
        deployment.start()
        with deployment.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            reply = {"enabled": True, "message": "Dziękujemy, odpiszemy wkrótce."}
            assert api.put("/api/auto-reply", json=reply).is_success
        set_latency(twilio, 30_000)  # Twilio's reply to the answer's call comes after the kill
        deployment.customer_writes(CUSTOMER, "Czy jest ktoś?")
        wait_until(
            lambda: taken_by_twilio(tmp_path, CUSTOMER), 60, "Twilio to take the answer", deployment
        )
        deployment.kill()
        set_latency(twilio, 0)
        deployment.start()

        def recorded() -> list[dict[str, Any]]:
            with deployment.client() as api:
                found = api.get("/api/messages", params={"participant": CUSTOMER})
            assert found.status_code == 200, found.text
            return [m for m in found.json()["items"] if m["direction"] == "outbound" and m["sid"]]

        [answer] = wait_until(recorded, 90, "the answer's SID after the restart", deployment)
        sent = [m for m in deployment.emulator_messages() if str(m.to) == CUSTOMER]
    finally:
        deployment.stop()
        twilio.close()
    assert [m.sid for m in sent] == [answer["sid"]]
    assert answer["body"] == "Dziękujemy, odpiszemy wkrótce."
    assert answer["status"] != "failed"


def test_answers_waiting_for_the_model_when_killed_come_once_after_the_restart(
    tmp_path: Path,
) -> None:
    """Runs claimed and handed to the model threads (MODEL_CONCURRENCY of them ask at
    once, the others wait their turn in memory) are all answered after a SIGKILL and a
    restart, each exactly once, without waiting for their leases."""
    customers = [f"+4860070010{i}" for i in range(5)]
    release = threading.Event()
    waiting: list[str] = []
    lock = threading.Lock()
    model = FakeOpenAI()

    def reply(body: dict[str, Any]) -> str:
        question = str(body["messages"][-1]["content"])
        if not release.is_set():
            with lock:
                waiting.append(question)
            release.wait(60)  # the server that asked is killed meanwhile
        return f"Odpowiedź: {question}"

    model.reply_with(reply)
    model.start()
    deployment = Deployment(tmp_path, LLM_ALLOW_PRIVATE_NETWORKS="true", MODEL_CONCURRENCY="2")
    try:
        deployment.start()
        deployment.answer_with_ai(model.base_url)
        for number in customers:
            deployment.customer_writes(number, f"Pytanie {number}")

        def all_claimed() -> bool:
            with deployment.admin_client() as api:
                runs = api.get("/api/automation/runs", params={"limit": 50}).json()
            return len(runs) == len(customers) and all(r["state"] == "working" for r in runs)

        wait_until(lambda: len(waiting) == 2, 60, "two model calls at once", deployment)
        wait_until(all_claimed, 60, "every run claimed", deployment)
        assert len(waiting) == 2  # MODEL_CONCURRENCY: the other three wait their turn
        deployment.kill()
        release.set()
        deployment.start()
        wait_until(
            lambda: all(deployment.sent_to()[n] for n in customers),
            90,
            "every answer after the restart",
            deployment,
        )
        sent = deployment.emulator_messages()
        with deployment.client() as api:
            runs = api.get("/api/automation/runs", params={"limit": 50}).json()
    finally:
        deployment.stop()
        release.set()
        model.stop()
    for number in customers:
        assert [str(m.body) for m in sent if str(m.to) == number] == [
            f"Odpowiedź: Pytanie {number}"
        ]
    assert sorted((r["state"], r["outcome"]) for r in runs) == [("done", "ai")] * 5


def test_a_stopping_server_hands_the_answers_waiting_for_the_model_back(
    tmp_path: Path,
) -> None:
    """Stopped politely (SIGTERM: a deploy, a restart), the server gives the runs that
    wait for the model back to the queue instead of leaving them claimed: whichever
    worker comes next answers them at once, each exactly once."""
    customers = [f"+4860070020{i}" for i in range(3)]
    release = threading.Event()
    asked: list[str] = []
    model = FakeOpenAI()

    def reply(body: dict[str, Any]) -> str:
        question = str(body["messages"][-1]["content"])
        asked.append(question)
        release.wait(60)
        return f"Odpowiedź: {question}"

    model.reply_with(reply)
    model.start()
    deployment = Deployment(tmp_path, LLM_ALLOW_PRIVATE_NETWORKS="true", MODEL_CONCURRENCY="1")
    try:
        deployment.start()
        deployment.answer_with_ai(model.base_url)
        for number in customers:
            deployment.customer_writes(number, f"Pytanie {number}")

        def runs() -> list[dict[str, Any]]:
            with deployment.admin_client() as api:
                return list(api.get("/api/automation/runs", params={"limit": 50}).json())

        wait_until(lambda: len(asked) == 1, 60, "the first model call", deployment)
        wait_until(
            lambda: [r["state"] for r in runs()] == ["working"] * 3,
            60,
            "every run claimed",
            deployment,
        )
        deployment.stop()  # SIGTERM, while one model call is under way and two wait
        engine = create_engine(deployment.env["DATABASE_URL"])
        with engine.connect() as conn:
            left = conn.execute(
                text("SELECT state, claim_token, claimed_by FROM automation_runs")
            ).all()
        engine.dispose()
        assert sorted(tuple(row) for row in left) == [("pending", None, None)] * 3
        release.set()
        deployment.start()
        wait_until(
            lambda: all(deployment.sent_to()[n] for n in customers),
            90,
            "every answer after the restart",
            deployment,
        )
        sent = deployment.emulator_messages()
    finally:
        deployment.stop()
        release.set()
        model.stop()
    for number in customers:
        assert [str(m.body) for m in sent if str(m.to) == number] == [
            f"Odpowiedź: Pytanie {number}"
        ]


def test_a_burst_of_answers_cut_off_mid_delivery_comes_once_each_after_the_restart(
    tmp_path: Path,
) -> None:
    """A burst's answers are stored together and handed to Twilio, here one call after
    the other (SEND_CONCURRENCY=1; by default they go together, see
    test_answers_at_twilio_pace.py). Killed while Twilio holds its answer to the first
    call (it took that message), the restarted server finds that one at Twilio and sends
    the others: every customer gets exactly one answer, and the answer each reads through
    the API is the one Twilio has."""
    customers = [f"+4860070030{i}" for i in range(6)]
    deployment = Deployment(tmp_path, standalone_sandbox=True, SEND_CONCURRENCY="1")
    twilio = emulator_api(deployment)

    def answered() -> dict[str, list[str]]:
        return answer_sids(deployment, customers)

    try:
        deployment.start()
        with deployment.admin_client() as api:
            assert api.put("/api/automation/rules", json={"debounce_seconds": 0}).is_success
            reply = {"enabled": True, "message": "Dziękujemy, odpiszemy wkrótce."}
            assert api.put("/api/auto-reply", json=reply).is_success
        set_latency(twilio, 30_000)  # Twilio's reply to the first call comes after the kill
        deployment.customers_write_at_once({n: f"Pytanie {n}" for n in customers})
        wait_until(
            lambda: taken_by_twilio(tmp_path), 60, "Twilio to take the first answer", deployment
        )
        deployment.kill()
        held = taken_by_twilio(tmp_path)
        set_latency(twilio, 0)
        deployment.start()
        wait_until(
            lambda: all(answered().values()), 90, "every answer's SID after the restart", deployment
        )
        sids = answered()
        sent = deployment.emulator_messages()
    finally:
        deployment.stop()
        twilio.close()
    assert 1 <= held < len(customers)  # the kill came mid-delivery
    for number in customers:
        at_twilio = [m for m in sent if str(m.to) == number]
        assert [str(m.body) for m in at_twilio] == ["Dziękujemy, odpiszemy wkrótce."]
        assert sids[number] == [at_twilio[0].sid]
