"""What this process counts as it works, for Prometheus (`GET /metrics`, relaydesk.observe).

These are per process: each web process and worker counts its own webhooks, sends and
jobs (Prometheus adds them up across the targets it scrapes). Figures that must be the
same whichever process answers (messages by status, queue depths, campaign progress,
spool sizes) are read from the database and the queues when scraped instead
(relaydesk.observe.metrics). The labelled children on hot paths are bound once here, so
counting a webhook costs a lock and an addition.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Webhooks: how each one ended at the front door.
WEBHOOKS = Counter(
    "relaydesk_webhooks",
    "Twilio webhooks received, by kind (inbound, status) and outcome "
    "(accepted, bad_signature, invalid, too_large, error)",
    ["kind", "outcome"],
)
WEBHOOK_OUTCOMES = ("accepted", "bad_signature", "invalid", "too_large", "error")
webhook_counters = {
    (kind, outcome): WEBHOOKS.labels(kind, outcome)
    for kind in ("inbound", "status")
    for outcome in WEBHOOK_OUTCOMES
}

# Sending: the Twilio call and how long a message waited before it.
TWILIO_CALL_SECONDS = Histogram(
    "relaydesk_twilio_send_seconds",
    "Duration of the Twilio API call that hands over one message",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SEND_DELAY_SECONDS = Histogram(
    "relaydesk_send_delay_seconds",
    "From a message's creation to Twilio accepting it (first attempts, unscheduled), "
    "by source (api, operator, auto_reply, ai, assistant, reminder, campaign, news)",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
SENDS = Counter(
    "relaydesk_sends",
    "Twilio send attempts, by outcome (accepted, failed: the call raised)",
    ["outcome"],
)
sends_accepted = SENDS.labels("accepted")
sends_failed = SENDS.labels("failed")

# Background jobs.
JOB_WAIT_SECONDS = Histogram(
    "relaydesk_job_wait_seconds",
    "How long a job waited in its queue before a worker started it, by queue",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)
JOBS = Counter(
    "relaydesk_jobs",
    "Background jobs run by this process, by name and outcome (ok, error)",
    ["job", "outcome"],
)
