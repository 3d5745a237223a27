"""A long job (an index build, a scrape) does not hold a stopping worker: it goes back to
the queue and runs again after the restart."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import wait_for


def test_a_job_stopped_with_its_worker_is_queued_again_and_finishes_later(
    server: Any, db: Any, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.jobs import service as jobs
    from relaydesk.jobs.models import Job

    worker = {"stopping": False}
    monkeypatch.setattr(jobs, "stopping", lambda: worker["stopping"])
    attempts: list[list[int]] = []

    @jobs.runner("test.long", again_after_stop=True)
    def long_job(params: dict[str, Any], progress: jobs.Progress) -> dict[str, Any]:
        steps: list[int] = []
        attempts.append(steps)
        for step in range(3):
            if len(attempts) == 1 and step == 1:
                worker["stopping"] = True  # the stop arrives between two steps
            progress(step, 3)
            steps.append(step)
        return {"steps": len(steps)}

    with session_scope() as session:
        job_id = jobs.start(session, "test.long", {}, "tests").id

    def queued_again() -> Job | None:
        job = db.scalar(select(Job).where(Job.id == job_id))
        return job if attempts and job is not None and job.status == "queued" else None

    stopped = wait_for(queued_again, what="the job back in the queue")
    assert attempts == [[0]]  # it ended at the step after the stop, not at its end
    assert stopped.message == "stopped with the server; it starts again after the restart"
    assert stopped.error is None and stopped.started_at is None
    worker["stopping"] = False  # the next start: the job queued again runs to its end
    view = wait_for(
        lambda: (v := api.get(f"/api/jobs/{job_id}").json())["status"] == "done" and v,
        what="the job to run again",
    )
    assert view["result"] == {"steps": 3}
    assert attempts == [[0], [0, 1, 2]]


def test_a_job_that_sees_the_stop_itself_is_not_ended_by_its_progress(
    server: Any, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.db import session_scope
    from relaydesk.jobs import service as jobs

    monkeypatch.setattr(jobs, "stopping", lambda: True)

    @jobs.runner("test.own_stop")  # e.g. a voice-bot sync: it keeps its cursors itself
    def own_stop(params: dict[str, Any], progress: jobs.Progress) -> dict[str, Any]:
        for step in range(3):
            progress(step, 3)
        return {"steps": 3}

    with session_scope() as session:
        job_id = jobs.start(session, "test.own_stop", {}, "tests").id
    view = wait_for(
        lambda: (v := api.get(f"/api/jobs/{job_id}").json())["status"] == "done" and v,
        what="the job to end",
    )
    assert view["result"] == {"steps": 3}
