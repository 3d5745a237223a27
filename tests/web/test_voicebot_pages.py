"""The Voice bot tab over plain HTTP: the page shell, its nav item, roles and Chart.js."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import FrozenClock
from tests.web.test_automation_pages import main_of

Panel = Callable[[str], httpx.Client]


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_voice_bot_tab_is_in_the_nav_and_renders_for_every_role(
    panel: Panel, role: str, clock: FrozenClock
) -> None:
    client = panel(role)
    clock.freeze(datetime(2025, 3, 31, 23, 59, tzinfo=UTC))  # the last minute of a month
    page = client.get("/voicebot")
    assert page.status_code == 200
    assert '<a href="/voicebot" aria-current="page">Voice bot</a>' in page.text
    content = main_of(page.text)
    # The default month is the clock's UTC one (in Warsaw it is April already); the script
    # and the vendored chart library load.
    assert 'data-month="2025-03"' in content
    assert 'src="/static/vendor/chart.umd.min.js?v=' in content
    assert 'src="/static/voicebot.js?v=' in content
    for kpi in ("total", "conversion", "duration", "transfers", "dropouts", "cost", "rating"):
        assert f'data-kpi="{kpi}"' in content
    for chart in ("daily", "duration", "cost", "direction", "evaluation"):
        assert f'id="vb-chart-{chart}"' in content
    assert 'id="vb-detail"' in content


def test_every_signed_in_page_links_to_the_voice_bot_tab(panel: Panel) -> None:
    page = panel("viewer").get("/messages")
    nav = re.findall(r'<li><a href="(/[a-z-]+)"', page.text)
    assert "/voicebot" in nav
    assert nav.index("/voicebot") == nav.index("/news") + 1


def test_viewers_get_no_fetch_export_or_archive_buttons(panel: Panel) -> None:
    content = main_of(panel("viewer").get("/voicebot").text)
    assert 'data-can-operate="no"' in content
    for control in ('id="vb-fetch"', 'id="vb-refetch"', 'id="vb-export"', 'id="vb-archive"'):
        assert control not in content


def test_operators_fetch_but_only_admins_see_the_settings_form(panel: Panel) -> None:
    operator = main_of(panel("operator").get("/voicebot").text)
    assert 'id="vb-fetch"' in operator and 'id="vb-archive"' in operator
    assert 'id="vb-settings"' not in operator and 'id="vb-api-key"' not in operator
    admin = main_of(panel("admin").get("/voicebot").text)
    assert 'id="vb-settings"' in admin
    assert 'type="password"' in admin and 'id="vb-test"' in admin


def test_fetching_is_disabled_with_a_reason_until_a_key_and_an_agent_are_set(
    panel: Panel, api: httpx.Client
) -> None:
    content = main_of(panel("operator").get("/voicebot").text)
    assert 'data-ready="no"' in content
    assert re.search(r'id="vb-fetch"[^>]*disabled', content)
    assert "Fetching needs an ElevenLabs API key and at least one agent id." in content

    saved = api.post(
        "/api/voicebot/settings",
        json={"agent_ids": "agent_sales, agent_support", "api_key": "sk_test_0123456789abcd"},
    )
    assert saved.status_code == 200, saved.text
    content = main_of(panel("operator").get("/voicebot").text)
    assert 'data-ready="yes"' in content
    assert not re.search(r'id="vb-fetch"[^>]*disabled', content)
    assert '<option value="agent_sales">agent_sales</option>' in content


def test_the_admin_form_shows_the_masked_key_never_the_key(panel: Panel, api: httpx.Client) -> None:
    secret = "sk_test_secret_value_9876"
    saved = api.post("/api/voicebot/settings", json={"agent_ids": ["agent_a"], "api_key": secret})
    assert saved.status_code == 200, saved.text
    page = panel("admin").get("/voicebot")
    assert secret not in page.text
    content = main_of(page.text)
    assert 'data-masked="••••9876"' in content and 'data-source="panel"' in content
    assert re.search(r'<textarea id="vb-agent-ids"[^>]*>agent_a</textarea>', content)


@pytest.mark.parametrize("language", ["en", "pl"])
def test_the_scripts_words_are_valid_json_in_the_pages_language(
    panel: Panel, language: str
) -> None:
    page = panel("viewer").get("/voicebot", headers={"Accept-Language": language})
    assert f'<html lang="{language}"' in page.text
    found = re.search(
        r'<script type="application/json" id="voicebot-strings">(.*?)</script>', page.text, re.S
    )
    assert found, "the page carries no words for its script"
    words = json.loads(found.group(1))
    assert words["no_calls"] and words["agent"] and words["user"]
    assert "%(page)s" in words["page"]


def test_the_vendored_chart_library_is_served(server: object) -> None:
    from tests.conftest import LiveServer

    assert isinstance(server, LiveServer)
    answer = httpx.get(f"{server.url}/static/vendor/chart.umd.min.js", timeout=30)
    assert answer.status_code == 200
    assert "javascript" in answer.headers["content-type"]
    assert "Chart.js v4" in answer.text[:200]
