"""`GET /metrics`: this process's counters, and the figures every process shares.

The counters of relaydesk.core.metrics (webhooks, sends, jobs) and the Python process
(memory, CPU, open files) are this process's own. The rest is read when Prometheus
scrapes, from the database and the queues, so any web process gives the same answer:
message totals and the last 24 hours by status and source, outbound messages still
waiting, queue depths and the age of the oldest waiting job, automation outcomes,
campaign progress, LLM tokens, background jobs (scrapes, index builds, imports) and
voice-bot syncs, the webhook spool and its dead letters. Each query is bounded: totals
come from counter rows, time windows use their indexes, and only unfinished campaigns
are counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relaydesk import __version__
from relaydesk.automation.models import AutomationRun, LLMUsage, RunState
from relaydesk.campaigns import service as campaigns
from relaydesk.campaigns.models import Batch, BatchStatus
from relaydesk.channels.twilio.account import current_account
from relaydesk.core.db import database_kind, get_sessionmaker, utcnow
from relaydesk.core.tasks import hueys
from relaydesk.jobs.models import Job
from relaydesk.messaging import spool
from relaydesk.messaging.models import Message, MessageCounter, MessageStatus
from relaydesk.messaging.writer import get_writer
from relaydesk.voicebot.models import VoiceSyncRun

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW = timedelta(hours=24)
WAITING = (MessageStatus.SCHEDULED, MessageStatus.PENDING, MessageStatus.SENDING)
UNFINISHED = (BatchStatus.PENDING, BatchStatus.PROCESSING, BatchStatus.PAUSED)


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[object, ...]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for *values, amount in rows:
        family.add_metric([str(v) for v in values], float(amount))  # type: ignore[arg-type]
    return family


def _counter(name: str, doc: str, labels: list[str], rows: Iterable[tuple[object, ...]]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for *values, amount in rows:
        family.add_metric([str(v) for v in values], float(amount))  # type: ignore[arg-type]
    return family


def _messages(session: Session) -> Iterator[Metric]:
    totals = session.execute(select(MessageCounter.direction, MessageCounter.count)).all()
    yield _counter(
        "relaydesk_messages",
        "Messages stored since installation, by direction",
        ["direction"],
        totals,
    )
    since = utcnow() - WINDOW
    recent = session.execute(
        select(Message.direction, Message.status, Message.source, func.count())
        .where(Message.created_at >= since)
        .group_by(Message.direction, Message.status, Message.source)
    ).all()
    yield _gauge(
        "relaydesk_messages_last_24h",
        "Messages created in the last 24 hours, by direction, current status and source",
        ["direction", "status", "source"],
        recent,
    )
    waiting = dict(
        session.execute(
            select(Message.status, func.count())
            .where(Message.status.in_(WAITING))
            .group_by(Message.status)
        ).all()
    )
    yield _gauge(
        "relaydesk_outbound_waiting",
        "Outbound messages not yet handed to Twilio, by status (scheduled, pending, sending)",
        ["status"],
        [(status.value, waiting.get(status, 0)) for status in WAITING],
    )


def _automation(session: Session) -> Iterator[Metric]:
    since = utcnow() - WINDOW
    rows = session.execute(
        select(AutomationRun.outcome, func.count())
        .where(AutomationRun.state == RunState.DONE, AutomationRun.created_at >= since)
        .group_by(AutomationRun.outcome)
    ).all()
    yield _gauge(
        "relaydesk_automation_runs_last_24h",
        "Automation runs finished in the last 24 hours, by outcome",
        ["outcome"],
        [(outcome or "none", amount) for outcome, amount in rows],
    )
    usage = session.execute(
        select(
            LLMUsage.provider, LLMUsage.model, LLMUsage.prompt_tokens, LLMUsage.completion_tokens
        )
    ).all()
    yield _counter(
        "relaydesk_llm_tokens",
        "Tokens used by AI answers since installation, by provider, model and kind",
        ["provider", "model", "kind"],
        [
            row
            for provider, model, prompt, completion in usage
            for row in (
                (provider, model, "prompt", prompt),
                (provider, model, "completion", completion),
            )
        ],
    )


def _campaigns(session: Session) -> Iterator[Metric]:
    by_status = dict(
        session.execute(select(Batch.status, func.count()).group_by(Batch.status)).all()
    )
    yield _gauge(
        "relaydesk_campaigns",
        "Campaigns by status",
        ["status"],
        [(status.value, by_status.get(status, 0)) for status in BatchStatus],
    )
    active = session.scalars(select(Batch.id).where(Batch.status.in_(UNFINISHED))).all()
    totals: dict[str, int] = {}
    for counts in campaigns.counters(session, list(active)).values():
        for state, amount in counts.items():
            totals[state] = totals.get(state, 0) + amount
    yield _gauge(
        "relaydesk_campaign_recipients",
        "Recipients of unfinished campaigns, by state ('sent' includes delivered)",
        ["state"],
        sorted(totals.items()),
    )


def _background(session: Session) -> Iterator[Metric]:
    jobs = session.execute(
        select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
    ).all()
    yield _gauge(
        "relaydesk_background_jobs",
        "Background jobs (scrapes, index builds, imports, voice-bot syncs) by kind and status",
        ["kind", "status"],
        jobs,
    )
    syncs = session.execute(
        select(VoiceSyncRun.status, func.count()).group_by(VoiceSyncRun.status)
    ).all()
    yield _gauge("relaydesk_voicebot_syncs", "Voice-bot sync runs by status", ["status"], syncs)


def _queues() -> Iterator[Metric]:
    depth, scheduled, oldest = [], [], []
    now = time.time()
    for queue, huey in hueys().items():
        depth.append((queue, huey.pending_count()))
        scheduled.append((queue, huey.scheduled_count()))
        head = huey.pending(limit=1)
        due = head[0].kwargs.get("queued_at") if head and head[0].kwargs else None
        oldest.append((queue, max(now - float(due), 0.0) if due else 0.0))
    yield _gauge("relaydesk_queue_depth", "Jobs waiting for a worker, by queue", ["queue"], depth)
    yield _gauge(
        "relaydesk_queue_scheduled", "Jobs scheduled for later, by queue", ["queue"], scheduled
    )
    yield _gauge(
        "relaydesk_queue_oldest_job_age_seconds",
        "How long the next job of each queue has been waiting (0 when none waits)",
        ["queue"],
        oldest,
    )


def _webhooks() -> Iterator[Metric]:
    spooled = spool.counts()
    yield _gauge(
        "relaydesk_spool_waiting",
        "Webhooks on disk waiting for the database",
        [],
        [(spooled.waiting,)],
    )
    yield _gauge(
        "relaydesk_dead_letters",
        "Webhooks kept as dead letters for an admin",
        [],
        [(spooled.dead,)],
    )
    yield _gauge(
        "relaydesk_webhook_writer_backlog",
        "Webhooks this process has accepted and not yet stored",
        [],
        [(get_writer().backlog(),)],
    )


def twilio_mode() -> str:
    """sandbox or live; "unknown" while the database (the panel's settings) is unreadable."""
    try:
        return current_account().mode
    except Exception:
        return "unknown"


class SharedFigures(Collector):
    """The figures read from the database and the queues at each scrape."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "relaydesk_info",
            "relaydesk's version and setup",
            labels=["version", "database", "twilio_mode"],
        )
        info.add_metric([__version__, database_kind(), twilio_mode()], 1.0)
        yield info
        up = 1.0
        session = get_sessionmaker()()
        try:
            for part in (_messages, _automation, _campaigns, _background):
                yield from part(session)
        except Exception:
            log.exception("metrics: the database could not be read")
            up = 0.0
        finally:
            session.close()
        yield _gauge(
            "relaydesk_database_up", "1 when the database answered this scrape", [], [(up,)]
        )
        try:
            yield from _queues()
        except Exception:
            log.exception("metrics: the queues could not be read")
        yield from _webhooks()


_shared = CollectorRegistry(auto_describe=False)
_shared.register(SharedFigures())


def render() -> bytes:
    """The exposition text: the processes' counters, then the shared figures.

    With PROMETHEUS_MULTIPROC_DIR (prometheus_client's own variable: a directory every
    relaydesk process on this machine or volume shares) the counters of every web
    process and worker are added up, so a worker's sends and jobs show too; without it,
    this process's own counters and its memory and CPU.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined) + generate_latest(_shared)
    return generate_latest(REGISTRY) + generate_latest(_shared)
