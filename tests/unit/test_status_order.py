import pytest

from relaydesk.messaging.status import can_move


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        ("pending", "queued", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("delivered", "queued", False),
        ("delivered", "undelivered", False),
        ("failed", "delivered", False),
        ("delivered", "read", True),
        ("accepted", "queued", True),
        ("scheduled", "canceled", True),
        ("queued", "canceled", True),
        ("sent", "canceled", False),
        ("canceled", "delivered", False),
        ("sent", "sent", False),
        ("sent", "bogus", False),
    ],
)
def test_status_moves_only_forward(current: str, new: str, allowed: bool) -> None:
    assert can_move(current, new) is allowed


def test_only_earlier_statuses_lead_to_sent() -> None:
    statuses = [
        "pending",
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "canceled",
    ]
    assert sorted(s for s in statuses if can_move(s, "sent")) == sorted(
        ["pending", "accepted", "scheduled", "queued", "sending"]
    )
    assert not can_move("delivered", "undelivered")
