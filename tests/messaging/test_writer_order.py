"""The webhook writer stores customers' messages before the status callbacks beside them."""

from __future__ import annotations

from typing import Any

import pytest

from relaydesk.channels.twilio.parsing import InboundRecord, parse_status
from relaydesk.messaging import writer
from relaydesk.messaging.ingest import read_inbound


def test_messages_are_committed_before_status_callbacks_of_the_same_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a campaign, hundreds of status callbacks a second share the writer with
    customers' messages; a customer's message (and the answer it waits for) must not
    wait for their transaction."""
    commits: list[list[str]] = []

    def write_batch(records: list[Any], lock_wait: float | None = None) -> str:
        commits.append(["in" if isinstance(r, InboundRecord) else "status" for r in records])
        return "stored"

    monkeypatch.setattr(writer, "write_batch", write_batch)
    status = parse_status({"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}, None)
    message = read_inbound(
        {"MessageSid": "SM" + "2" * 32, "From": "+48600100200", "To": "+48221234567", "Body": "?"}
    )
    batch = [writer._Item(status, None, None), writer._Item(message, None, None)] * 2
    writer.WebhookWriter()._process(batch)
    assert commits == [["in", "in"], ["status", "status"]]
