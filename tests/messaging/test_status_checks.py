"""Statuses whose callbacks were lost (relaydesk was down) are asked of Twilio later.

Twilio does not retry a status callback; a message must not stay "sent" forever while
Twilio knows it was delivered. The real server and a standalone emulator: relaydesk is
killed right after sending, the emulator's callbacks find nobody, relaydesk starts again.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from relaydesk.channels.twilio.gateway import make_client
from tests.processes import ACCOUNT_SID, Deployment, wait_until


def test_a_status_missed_while_the_server_was_down_is_fetched_from_twilio(
    tmp_path: Path,
) -> None:
    deployment = Deployment(
        tmp_path,
        standalone_sandbox=True,
        SANDBOX_STATUS_DELAY_MS="1500",
        STATUS_CHECK_AFTER_SECONDS="1,3600",
    )
    try:
        deployment.start()
        with deployment.client() as client:
            sent = client.post("/api/send-message", json={"to": "+48600100200", "body": "Hej"})
            assert sent.status_code in (200, 201, 202), sent.text
            message_id = sent.json()["id"]
            wait_until(
                lambda: client.get(f"/api/messages/{message_id}").json()["sid"],
                60,
                "Twilio's SID to be recorded",
                deployment,
            )
        deployment.kill()
        twilio = make_client(
            deployment.sandbox_base, ACCOUNT_SID, deployment.env["TWILIO_AUTH_TOKEN"]
        )
        wait_until(
            lambda: [m for m in twilio.messages.list() if m.status == "delivered"],
            60,
            "the emulator to deliver the message (its callbacks find nobody)",
            deployment,
        )
        deployment.start()
        with deployment.client() as client:
            wait_until(
                lambda: client.get(f"/api/messages/{message_id}").json()["status"] == "delivered",
                120,
                "relaydesk to learn the delivery from Twilio",
                deployment,
            )
        engine = create_engine(deployment.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                kept = conn.execute(
                    text("SELECT status, payload FROM message_events WHERE message_id = :m"),
                    {"m": message_id},
                ).all()
        finally:
            engine.dispose()
        checked = [row for row in kept if "status check" in str(row.payload)]
        assert [row.status for row in checked] == ["delivered"], kept
    finally:
        deployment.stop()
