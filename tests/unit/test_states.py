"""The state machines' enums and transition rules (pure: no server, no database)."""

from __future__ import annotations

import importlib
import json
from enum import StrEnum

import pytest
from sqlalchemy import Enum

from relaydesk.automation.models import RunOutcome, RunState
from relaydesk.campaigns.models import BatchStatus, RecipientStatus
from relaydesk.campaigns.service import ACTIONS, FINAL, recipient_state
from relaydesk.core import domains
from relaydesk.core.db import Base
from relaydesk.digests.models import DigestOutcome
from relaydesk.jobs.models import JobStatus
from relaydesk.jobs.service import ACTIVE
from relaydesk.media.models import AttachmentState
from relaydesk.media.service import UNFINISHED
from relaydesk.messaging import status
from relaydesk.messaging.models import MessageStatus, SubmitState
from relaydesk.reminders.models import ReminderOutcome
from relaydesk.voicebot.models import SyncStatus

domains.load_models()  # every table in the metadata

CHECKS: dict[str, dict[str, tuple[str, ...]]] = importlib.import_module(
    "relaydesk.migrations.versions.0010_status_check_constraints"
).CHECKS
# Later revisions that changed a column's set.
CHECKS = {
    **CHECKS,
    "automation_runs": {
        **CHECKS["automation_runs"],
        "outcome": importlib.import_module(
            "relaydesk.migrations.versions.0014_profiles_hours_assignment"
        ).OUTCOMES,
    },
}

ENUMS: dict[tuple[str, str], type[StrEnum]] = {
    ("messages", "status"): MessageStatus,
    ("messages", "submit_state"): SubmitState,
    ("multi_sms_batches", "status"): BatchStatus,
    ("multi_sms_recipients", "status"): RecipientStatus,
    ("jobs", "status"): JobStatus,
    ("attachments", "state"): AttachmentState,
    ("automation_runs", "state"): RunState,
    ("automation_runs", "outcome"): RunOutcome,
    ("reminders", "last_outcome"): ReminderOutcome,
    ("reminder_runs", "outcome"): ReminderOutcome,
    ("news_recipients", "last_outcome"): DigestOutcome,
    ("voicebot_sync_runs", "status"): SyncStatus,
}
COLUMNS = sorted(ENUMS)


def test_every_constrained_column_has_its_enum() -> None:
    constrained = {(t, c) for t, columns in CHECKS.items() for c in columns}
    assert constrained == set(ENUMS)


@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_the_migration_allows_exactly_the_enums_values(table: str, column: str) -> None:
    assert set(CHECKS[table][column]) == {m.value for m in ENUMS[table, column]}


@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_the_column_stores_the_enum_under_the_migrations_constraint(
    table: str, column: str
) -> None:
    col = Base.metadata.tables[table].c[column]
    assert isinstance(col.type, Enum)
    assert col.type.enum_class is ENUMS[table, column]
    assert col.type.enums == [m.value for m in ENUMS[table, column]]  # values, not names
    assert not col.type.native_enum  # VARCHAR on PostgreSQL too: no type to migrate
    assert max(len(v) for v in col.type.enums) <= (col.type.length or 0)
    names = {c.name for c in Base.metadata.tables[table].constraints}
    assert f"ck_{table}_{column}" in names


@pytest.mark.parametrize("enum", sorted(set(ENUMS.values()), key=lambda e: e.__name__))
def test_members_are_their_strings_in_json_and_text(enum: type[StrEnum]) -> None:
    for member in enum:
        assert member == member.value
        assert str(member) == f"{member}" == member.value
        assert json.dumps({"status": member}) == json.dumps({"status": member.value})


# Messages ---------------------------------------------------------------------------


def test_every_message_status_is_known_and_final_ones_are_a_subset() -> None:
    assert frozenset(MessageStatus) == status.KNOWN
    assert status.FINAL <= status.KNOWN
    assert set(status.RANK) | {MessageStatus.CANCELED} | status.INBOUND_STATUSES == status.KNOWN


def test_twilios_strings_are_accepted_where_members_are() -> None:
    assert status.can_move("pending", "queued") is status.can_move(
        MessageStatus.PENDING, MessageStatus.QUEUED
    )
    assert status.can_move(MessageStatus.SENT, "delivered")


@pytest.mark.parametrize("new", ["partially_delivered", "", "SENT", "receiving", "received"])
def test_no_message_moves_to_a_status_outside_the_order(new: str) -> None:
    assert not any(status.can_move(current, new) for current in MessageStatus)


def test_a_final_status_moves_only_to_read() -> None:
    for current in status.FINAL:
        targets = {new for new in MessageStatus if status.can_move(current, new)}
        assert targets <= {MessageStatus.READ}, current
    assert not any(status.can_move(MessageStatus.CANCELED, new) for new in MessageStatus)


def test_only_waiting_messages_can_be_canceled() -> None:
    sources = {s for s in MessageStatus if status.can_move(s, MessageStatus.CANCELED)}
    assert sources == {MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.ACCEPTED}


def test_status_never_moves_backwards() -> None:
    for current, rank in status.RANK.items():
        for new, new_rank in status.RANK.items():
            assert status.can_move(current, new) is (new_rank > rank), (current, new)


# Campaigns --------------------------------------------------------------------------


def test_a_finished_campaign_takes_no_action() -> None:
    for sources, target in ACTIONS.values():
        assert not sources & FINAL
        assert target not in sources


@pytest.mark.parametrize(
    ("action", "sources", "target"),
    [
        ("pause", {"pending", "processing"}, "paused"),
        ("resume", {"paused"}, "processing"),
        ("cancel", {"pending", "processing", "paused"}, "canceled"),
    ],
)
def test_campaign_actions(action: str, sources: set[str], target: str) -> None:
    assert ACTIONS[action] == (sources, target)


@pytest.mark.parametrize(
    ("recipient", "message", "shown"),
    [
        (RecipientStatus.PENDING, None, "pending"),
        (RecipientStatus.CLAIMED, None, "sending"),
        (RecipientStatus.SKIPPED, None, "skipped"),
        (RecipientStatus.QUEUED, {"status": MessageStatus.PENDING, "sid": None}, "sending"),
        (RecipientStatus.QUEUED, {"status": MessageStatus.QUEUED, "sid": "SM1"}, "sent"),
        (RecipientStatus.QUEUED, {"status": MessageStatus.READ, "sid": "SM1"}, "delivered"),
        (RecipientStatus.QUEUED, {"status": "undelivered", "sid": "SM1"}, "undelivered"),
        (RecipientStatus.QUEUED, {"status": MessageStatus.CANCELED, "sid": "SM1"}, "failed"),
    ],
)
def test_a_recipient_reads_through_its_message(
    recipient: RecipientStatus, message: dict[str, str | None] | None, shown: str
) -> None:
    assert recipient_state(recipient, message) == shown


# Jobs, files, automation --------------------------------------------------------------


def test_active_jobs_and_unfinished_files_are_states_of_their_machines() -> None:
    assert set(ACTIVE) == {JobStatus.QUEUED, JobStatus.RUNNING}
    assert set(UNFINISHED) == {AttachmentState.PENDING, AttachmentState.WORKING}


def test_run_outcomes_fit_their_column_and_keep_their_words() -> None:
    assert len(RunOutcome) == 17
    assert RunOutcome("session_ended") is RunOutcome.SESSION_ENDED
    with pytest.raises(ValueError):
        RunOutcome("answered")
