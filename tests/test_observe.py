"""Watching relaydesk: /ready says whether it can work, /metrics moves with the traffic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import missing, wait_for
from tests.pgserver import PgCluster, find_bindir
from tests.processes import Deployment


def scrape(
    client: httpx.Client | Any, url: str, token: str
) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_ready_answers_every_check_without_sign_in(server: Any) -> None:
    answer = httpx.get(f"{server.url}/ready")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert sorted(body["checks"]) == ["data_dir", "database", "disk", "queue"]
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["queue"]["detail"].startswith("live ")
    assert "MB free" in body["checks"]["disk"]["detail"]


def test_ready_fails_when_the_disk_is_short_of_room_and_says_so(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "ready_min_free_mb", 9_999_999)
    answer = httpx.get(f"{server.url}/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["checks"]["disk"]["ok"] is False
    assert "READY_MIN_FREE_MB=9999999" in body["checks"]["disk"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_ready_fails_when_the_data_directory_takes_no_file(
    server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from relaydesk.core.config import get_settings

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setattr(get_settings(), "data_dir", not_a_folder)
    body = httpx.get(f"{server.url}/ready").json()
    assert body["status"] == "not ready"
    assert body["checks"]["data_dir"]["ok"] is False


def test_metrics_need_a_token_and_accept_any_role_or_the_metrics_token(
    server: Any, make_token: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaydesk.core.config import get_settings

    url = f"{server.url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Basic YTpi"}).status_code == 401
    refused = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert refused.json()["code"] == "unauthorized"
    assert "relaydesk_" not in refused.text
    viewer = make_token("viewer")
    assert httpx.get(url, headers={"Authorization": f"Bearer {viewer}"}).status_code == 200

    secret = "scrape-" + "k" * 24
    monkeypatch.setattr(get_settings(), "metrics_token", secret)
    assert httpx.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {secret}x"}).status_code == 401
    # The metrics token reads metrics, nothing else.
    other = httpx.get(f"{server.url}/api/messages", headers={"Authorization": f"Bearer {secret}"})
    assert other.status_code == 401


def test_metrics_move_when_traffic_flows(
    server: Any,
    api: httpx.Client,
    make_token: Callable[[str], str],
    twilio_post: Callable[..., httpx.Response],
) -> None:
    token = make_token("viewer")
    url = f"{server.url}/metrics"
    with httpx.Client(timeout=30) as client:
        before = scrape(client, url, token)
        params = {"MessageSid": "SM" + "ab" * 16, "From": "+48600500601", "To": "+15005550006"}
        assert twilio_post("/twilio/inbound", {**params, "Body": "Dzień dobry"}).status_code == 200
        forged = twilio_post("/twilio/inbound", {**params, "Body": "x"}, signature="forged")
        assert forged.status_code == 403
        sent = api.post("/api/send-message", json={"to": "+48600500602", "body": "Witamy"})
        assert sent.status_code == 201, sent.text
        wait_for(
            lambda: api.get(f"/api/messages/{sent.json()['id']}").json()["sid"],
            what="the message handed to Twilio",
        )
        after = scrape(client, url, token)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("relaydesk_webhooks_total", kind="inbound", outcome="accepted") == 1
    assert moved("relaydesk_webhooks_total", kind="inbound", outcome="bad_signature") == 1
    assert moved("relaydesk_messages_total", direction="inbound") == 1
    assert moved("relaydesk_messages_total", direction="outbound") == 1
    assert moved("relaydesk_sends_total", outcome="accepted") == 1
    assert moved("relaydesk_send_delay_seconds_count", source="api") == 1
    assert moved("relaydesk_twilio_send_seconds_count") == 1
    recent = {"direction": "inbound", "status": "received", "source": "customer"}
    assert value(after, "relaydesk_messages_last_24h", **recent) >= 1
    for queue in ("live", "bulk"):
        assert ("relaydesk_queue_depth", (("queue", queue),)) in after
        assert ("relaydesk_queue_oldest_job_age_seconds", (("queue", queue),)) in after
    assert value(after, "relaydesk_database_up") == 1
    assert ("relaydesk_dead_letters", ()) in after
    assert any(name == "relaydesk_info" for name, _ in after)
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


@pytest.mark.e2e
def test_ready_fails_while_the_database_is_gone_and_recovers(tmp_path: Path) -> None:
    """A real `relaydesk serve` on its own PostgreSQL, which is stopped and started again."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl) is not installed")
        return
    cluster = PgCluster(bindir)
    url = cluster.start()
    scraper = "prometheus-" + "s" * 20
    deployment = Deployment(tmp_path / "data", DATABASE_URL=url, METRICS_TOKEN=scraper)
    try:
        deployment.start()
        ready = httpx.get(f"{deployment.url}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        cluster.halt()
        gone = httpx.get(f"{deployment.url}/ready", timeout=30)
        assert gone.status_code == 503
        checks = gone.json()["checks"]
        assert checks["database"]["ok"] is False
        assert checks["data_dir"]["ok"] is True and checks["queue"]["ok"] is True
        assert httpx.get(f"{deployment.url}/health", timeout=30).status_code == 503
        # Monitoring still answers (with the metrics token, which needs no database).
        down = scrape(httpx, f"{deployment.url}/metrics", scraper)
        assert value(down, "relaydesk_database_up") == 0
        cluster.resume()
        wait_for(
            lambda: httpx.get(f"{deployment.url}/ready", timeout=10).status_code == 200,
            timeout=60,
            what="/ready once PostgreSQL is back",
        )
        with deployment.client() as client:
            samples = scrape(client, f"{deployment.url}/metrics", deployment.token)
        assert value(samples, "relaydesk_database_up") == 1
    finally:
        deployment.stop()
        cluster.stop()


@pytest.mark.e2e
def test_json_logs_and_an_access_log_without_secrets(tmp_path: Path) -> None:
    import json

    deployment = Deployment(tmp_path / "data", LOG_FORMAT="json", ACCESS_LOG="true")
    try:
        deployment.start()
        assert httpx.get(f"{deployment.url}/ready", timeout=10).status_code == 200
        secret_link = "capability-" + "x" * 30
        assert httpx.get(f"{deployment.url}/m/{secret_link}?sig=abc", timeout=10).status_code == 404

        def access_lines() -> list[dict[str, Any]]:
            found = []
            for line in deployment.logs_text().splitlines():
                if line.startswith("{"):
                    record = json.loads(line)  # every structured line is valid JSON
                    if record.get("logger") == "relaydesk.access":
                        found.append(record)
            return found

        lines = wait_for(
            lambda: [r for r in access_lines() if r["path"].startswith("/m/")] and access_lines(),
            what="the access log lines",
        )
        ready = [r for r in lines if r["path"] == "/ready"]
        assert ready and ready[0]["status"] == 200 and ready[0]["method"] == "GET"
        assert ready[0]["client"] == "127.0.0.1" and ready[0]["ms"] >= 0
        assert {"time", "level"} <= set(ready[0])
        media = [r for r in lines if r["path"].startswith("/m/")]
        assert media[0]["status"] == 404 and media[0]["path"] == "/m/***"
        assert secret_link not in deployment.logs_text()
        assert "sig=abc" not in deployment.logs_text()
    finally:
        deployment.stop()


def test_the_example_grafana_dashboard_reads_only_metrics_relaydesk_exposes(
    server: Any, make_token: Callable[[str], str]
) -> None:
    import json
    import re

    dashboard = json.loads(
        (Path(__file__).parents[1] / "deploy/grafana/relaydesk.json").read_text()
    )
    wanted = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"relaydesk_[a-z0-9_]+", target["expr"])
    }
    assert len(wanted) >= 15
    answer = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {make_token('viewer')}"}
    )
    exposed = {
        re.sub(r"_(bucket|count|sum|total)$", "", family.name)
        for family in text_string_to_metric_families(answer.text)
    }
    assert wanted <= exposed, sorted(wanted - exposed)
