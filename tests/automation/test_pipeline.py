"""The automation pipeline: exactly one answer, precedence, no retro answers, failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from relaydesk.automation.models import AutomationRun, ConversationSummary, LLMUsage
from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Message
from tests.automation.conftest import OUR_NUMBER, answers, finished, run_of
from tests.conftest import wait_for
from tests.fakes import FakeOpenAI

Inbound = Callable[..., str]


def auto_reply(api: httpx.Client, text: str = "Dziękujemy, odpiszemy wkrótce.") -> None:
    response = api.put("/api/auto-reply", json={"enabled": True, "message": text})
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is True


def test_classic_auto_reply_answers_from_the_number_written_to(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules()
    auto_reply(api)
    sid = inbound("+48600200001", "Czy jesteście otwarci w sobotę?")
    run = finished(db, sid)
    assert run.outcome == "auto_reply"
    [answer] = answers(db, "+48600200001")
    assert answer.body == "Dziękujemy, odpiszemy wkrótce."
    assert answer.from_addr == OUR_NUMBER
    assert answer.source == "auto_reply"
    assert run.reply_message_id == answer.id
    wait_for(
        lambda: db.scalar(select(Message.sid).where(Message.id == answer.id)),
        what="the answer handed to Twilio",
    )


def test_duplicate_webhooks_and_repeated_jobs_give_one_answer(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.automation import tasks

    rules()
    auto_reply(api)
    sid = inbound("+48600200002", "Halo?")
    inbound("+48600200002", "Halo?", sid=sid)  # Twilio delivered the webhook twice
    run = finished(db, sid)
    tasks.run(run.id)  # the job ran again (e.g. re-queued by a sweep)
    tasks.sweep()
    assert len(answers(db, "+48600200002")) == 1
    assert db.scalar(select(func.count()).select_from(AutomationRun)) == 1


def test_a_worker_killed_mid_job_leaves_work_that_is_answered_once(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.automation import answering, pipeline, tasks
    from relaydesk.core.db import session_scope, utcnow

    rules(debounce_seconds=60)  # the queued job waits; this test plays the workers itself
    auto_reply(api)
    sid = inbound("+48600200003", "Dzień dobry")
    run = wait_for(lambda: run_of(db, sid), what="the run")
    # Worker A claims the run and dies before storing anything.
    with session_scope() as session:
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == run.id)
            .values(state="working", claim_token="deadbeef", lease_until=utcnow())
        )
    tasks.run(run.id)  # a job while A's lease holds... expired already: taken over
    done = finished(db, sid)
    assert done.outcome == "auto_reply"
    assert len(answers(db, "+48600200003")) == 1
    # Worker A wakes up and tries to finish under its old claim: refused.
    late = answering.Answer("auto_reply", "auto_reply", "drugi raz")
    assert pipeline._finish(run.id, "deadbeef", late) is None
    assert len(answers(db, "+48600200003")) == 1


def test_the_sweep_takes_over_runs_whose_lease_expired(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.automation import tasks
    from relaydesk.core.db import session_scope, utcnow

    rules(debounce_seconds=60)
    auto_reply(api)
    sid = inbound("+48600200004", "Jest ktoś?")
    run = wait_for(lambda: run_of(db, sid), what="the run")
    with session_scope() as session:
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == run.id)
            .values(state="working", claim_token="c0ffee", lease_until=utcnow() - timedelta(1))
        )
    tasks.sweep()
    assert finished(db, sid).outcome == "auto_reply"
    assert len(answers(db, "+48600200004")) == 1


def test_messages_received_before_a_mode_was_switched_on_get_no_answer(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any], ai_on: Any
) -> None:
    from relaydesk.automation import tasks

    rules(debounce_seconds=60)
    # With every mode off a message needs no follow-up at all: it is done when stored.
    idle = inbound("+48600200005", "Nikt nie odpowiada")
    assert run_of(db, idle) is None
    assert db.scalar(select(Message.processed_at).where(Message.sid == idle)) is not None

    # The classic auto-reply is on when this arrives; AI takes over before its job runs.
    auto_reply(api)
    sid = inbound("+48600200005", "Stara wiadomość")
    run = wait_for(lambda: run_of(db, sid), what="the run")
    ai_on(enabled=True)
    rules(debounce_seconds=60)
    tasks.run(run.id)
    done = finished(db, sid)
    assert done.outcome == "retro"
    assert "AI" in (done.detail or "")
    assert answers(db, "+48600200005") == []
    rules()
    new = inbound("+48600200005", "Nowa wiadomość")
    assert finished(db, new).outcome == "ai"


def test_stop_start_and_help_keywords(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules(help_message="Pomoc: zadzwoń 22 100 200.", start_message="Witamy ponownie!")
    auto_reply(api)
    customer = "+48600200006"
    stop = inbound(customer, "stop")
    contact = db.scalar(select(Contact).where(Contact.phone == customer))
    assert contact.opted_out_at is not None  # recorded while the message was stored
    assert run_of(db, stop) is None  # and nothing can be answered to it
    later = inbound(customer, "Jeszcze pytanie")
    assert finished(db, later).outcome == "opted_out"
    assert answers(db, customer) == []
    # An operator cannot write to them either.
    refused = api.post("/api/send-message", json={"to": customer, "body": "Hej"})
    assert refused.status_code == 409
    assert "START" in refused.json()["detail"]

    start = inbound(customer, "START")
    assert finished(db, start).outcome == "keyword_reply"
    contact = db.scalar(select(Contact).where(Contact.phone == customer))
    assert contact.opted_out_at is None
    assert contact.opted_in_at is not None
    help_sid = inbound(customer, " Help ")
    assert finished(db, help_sid).outcome == "keyword_reply"
    assert [m.body for m in answers(db, customer)] == [
        "Witamy ponownie!",
        "Pomoc: zadzwoń 22 100 200.",
    ]


def test_keywords_twilio_already_answered_are_recorded_but_not_answered_again(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules()
    auto_reply(api)
    customer = "+48600200007"
    help_sid = inbound(customer, "INFO", OptOutType="HELP")
    stop = inbound(customer, "Koniec subskrypcji", OptOutType="STOP")
    assert db.scalar(select(Contact.opted_out_at).where(Contact.phone == customer)) is not None
    # Twilio answered both already: no run, no answer.
    assert run_of(db, help_sid) is None and run_of(db, stop) is None
    assert answers(db, customer) == []

    # Without Advanced Opt-Out a HELP gets relaydesk's own help text (once opted in).
    inbound(customer, "START", OptOutType="START")
    asked = inbound(customer, "HELP")
    assert finished(db, asked).outcome == "keyword_reply"
    assert [m.body for m in answers(db, customer)] == [
        api.get("/api/automation/rules").json()["help_message"]
    ]


def test_an_operator_reply_pauses_the_bot_and_the_switch_turns_it_off(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules(takeover_minutes=60)
    auto_reply(api)
    customer = "+48600200008"
    first = inbound(customer, "Pytanie 1")
    assert finished(db, first).outcome == "auto_reply"
    sent = api.post("/api/send-message", json={"to": customer, "body": "Tu Ania, już pomagam"})
    assert sent.status_code in (200, 201, 202), sent.text
    second = inbound(customer, "Dziękuję")
    run = finished(db, second)
    assert run.outcome == "paused"
    state = api.get(f"/api/conversations/{customer}/automation").json()
    assert state["paused_until"] is not None

    # Switching the bot on ends the pause; switching it off silences it for good.
    assert (
        api.put(f"/api/conversations/{customer}/automation", json={"enabled": True}).json()[
            "paused_until"
        ]
        is None
    )
    third = inbound(customer, "Pytanie 3")
    assert finished(db, third).outcome == "auto_reply"
    off = api.put(f"/api/conversations/{customer}/automation", json={"enabled": False})
    assert off.json()["enabled"] is False
    fourth = inbound(customer, "Pytanie 4")
    assert finished(db, fourth).outcome == "bot_off"
    assert len(answers(db, customer)) == 2


def test_the_loop_guard_caps_automatic_answers_per_hour(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    rules(loop_guard_per_hour=2)
    auto_reply(api, "Auto: dziękujemy")
    customer = "+48600200009"  # another bot that answers every message
    outcomes = [finished(db, inbound(customer, f"Auto: ok {i}")).outcome for i in range(3)]
    assert outcomes == ["auto_reply", "auto_reply", "loop_guard"]
    assert len(answers(db, customer)) == 2


def test_a_long_conversation_with_a_person_is_answered_to_the_end(
    db: Any, inbound: Inbound, ai_on: Callable[..., Any]
) -> None:
    ai_on()  # the default rules: the hourly cap is a backstop, not a limit on people
    customer = "+48600200031"
    topics = ["cena", "dostawa", "godziny otwarcia", "adres", "faktura"]
    things = ["tortu", "chleba", "bułek", "ciasta", "pączków", "rogali"]
    for n in range(30):
        sid = inbound(customer, f"Pytanie o {topics[n % 5]} {things[n % 6]}, proszę")
        run = finished(db, sid)
        assert run.outcome == "ai", (n, run.outcome, run.detail)
    assert len(answers(db, customer)) == 30


def test_a_bot_answering_our_answers_is_stopped_on_the_third_round(
    db: Any, inbound: Inbound, rules: Callable[..., Any], api: httpx.Client
) -> None:
    rules()
    auto_reply(api)
    customer = "+48600200032"  # another business's bot: it answers each of our answers
    other = "Thank you for your message no. {}. We will get back to you shortly."
    runs = [finished(db, inbound(customer, other.format(n))) for n in range(1, 5)]
    assert [run.outcome for run in runs] == ["auto_reply", "auto_reply", "loop_guard", "loop_guard"]
    assert "answered the same way" in (runs[2].detail or "")
    assert len(answers(db, customer)) == 2
    # A person writing something else afterwards is answered again.
    assert finished(db, inbound(customer, "Przepraszam, to był nasz automat.")).outcome == (
        "auto_reply"
    )


def test_our_own_answer_sent_back_is_not_answered(
    db: Any, inbound: Inbound, rules: Callable[..., Any], api: httpx.Client
) -> None:
    rules()
    auto_reply(api, "Dziękujemy, odpiszemy wkrótce.")
    customer = "+48600200033"
    assert finished(db, inbound(customer, "Dzień dobry")).outcome == "auto_reply"
    echoed = finished(db, inbound(customer, "Dziękujemy, odpiszemy wkrótce."))
    assert echoed.outcome == "loop_guard"
    assert "our own automatic answer" in (echoed.detail or "")
    assert len(answers(db, customer)) == 1


def test_precedence_assistant_then_ai_then_classic(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    auto_reply(api, "Klasyczna odpowiedź")
    config = ai_on()
    assert config["enabled"] is True
    assert api.get("/api/auto-reply").json() == {
        **api.get("/api/auto-reply").json(),
        "enabled": False,
        "suspended_by_ai": True,
    }
    created = api.post(
        "/api/assistants", json={"name": "Recepcja", "system_prompt": "Jesteś recepcją."}
    )
    assert created.status_code == 201, created.text
    bound = api.post(
        "/api/phone-numbers", json={"number": OUR_NUMBER, "assistant_id": created.json()["id"]}
    )
    assert bound.status_code == 201, bound.text

    first = inbound("+48600200010", "Kto mówi?")
    assert finished(db, first).outcome == "assistant"
    assert openai_fake.requests[-1]["messages"][0]["content"].startswith("Jesteś recepcją.")

    assert api.delete(f"/api/phone-numbers/{bound.json()['id']}").status_code == 204
    second = inbound("+48600200011", "A teraz?")
    assert finished(db, second).outcome == "ai"

    off = api.put("/api/ai/config", json={"enabled": False})
    assert off.json()["enabled"] is False
    classic = api.get("/api/auto-reply").json()
    assert classic["enabled"] is True  # AI off brings the classic auto-reply back
    third = inbound("+48600200012", "I jeszcze?")
    assert finished(db, third).outcome == "auto_reply"
    assert [m.source for m in answers(db, "+48600200010")] == ["assistant"]
    assert [m.source for m in answers(db, "+48600200011")] == ["ai"]
    assert [m.body for m in answers(db, "+48600200012")] == ["Klasyczna odpowiedź"]


def test_ai_reads_the_conversation_scrubbed_of_twilio_links(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    ai_on(system_prompt="Jesteś asystentem piekarni.", temperature=0.2)
    customer = "+48600200013"
    media_url = (
        "https://api.twilio.com/2010-04-01/Accounts/AC"
        + "1" * 32
        + "/Messages/MM"
        + "2" * 32
        + "/Media/ME"
        + "3" * 32
    )
    first = inbound(customer, f"Zobacz zdjęcie {media_url} oraz SM{'4' * 32}")
    assert finished(db, first).outcome == "ai"
    second = inbound(customer, "Macie chleb żytni?")
    assert finished(db, second).outcome == "ai"

    body = openai_fake.requests[-1]
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "Jesteś asystentem piekarni."
    assert body["messages"][-1]["content"] == "Macie chleb żytni?"
    seen = " ".join(m["content"] for r in openai_fake.requests for m in r["messages"])
    assert "twilio.com" not in seen
    assert "2" * 32 not in seen and "4" * 32 not in seen and "AC" + "1" * 32 not in seen
    assert "[attachment]" in seen
    assert openai_fake.headers[-1]["authorization"] == "Bearer sk-test-key-123"

    # The answer went out, and tokens are counted per reply and in total.
    [_, last] = answers(db, customer)
    assert last.body == "Echo: Macie chleb żytni?"
    run = run_of(db, second)
    assert run is not None and run.prompt_tokens > 0 and run.completion_tokens == 4
    total = db.scalar(select(func.sum(LLMUsage.completion_tokens)))
    assert total == 4 + len(["Echo:", "Zobacz", "zdjęcie", "[attachment]", "oraz", "[id]"])
    usage = api.get("/api/ai/config").json()["usage"]
    assert usage[0]["calls"] == 2


def test_long_answers_are_trimmed_at_a_sentence_to_the_segment_limit(
    db: Any, inbound: Inbound, ai_on: Callable[..., Any], openai_fake: FakeOpenAI
) -> None:
    from relaydesk.channels.twilio.segments import count_segments

    ai_on(max_reply_segments=1)
    sentence = "Tak, mamy świeży chleb codziennie od siódmej rano. "
    openai_fake.reply_with(lambda _: sentence * 10)
    sid = inbound("+48600200014", "Macie chleb?")
    assert finished(db, sid).outcome == "ai"
    [answer] = answers(db, "+48600200014")
    assert count_segments(answer.body).segments == 1
    assert answer.body == sentence.strip()


def test_provider_errors_are_retried_then_fall_back_visibly(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    ai_on(fallback_message="Przepraszamy, odpiszemy za chwilę.")
    openai_fake.fail_next(503, times=1)  # transient: retried
    ok = inbound("+48600200015", "Pierwsze")
    assert finished(db, ok).outcome == "ai"
    assert answers(db, "+48600200015")[-1].body == "Echo: Pierwsze"

    openai_fake.fail_next(500, times=10)  # down for longer than the retries
    down = inbound("+48600200015", "Drugie")
    run = finished(db, down)
    assert run.outcome == "failed"
    assert "could not answer" in (run.detail or "")
    assert answers(db, "+48600200015")[-1].body == "Przepraszamy, odpiszemy za chwilę."
    state = api.get("/api/conversations/+48600200015/automation").json()
    assert state["last_failure"]["outcome"] == "failed"

    openai_fake.reset()
    openai_fake.api_key = "sk-other"  # the key is rejected: not retried
    before = len(openai_fake.requests)
    rejected = inbound("+48600200016", "Trzecie")
    run = finished(db, rejected)
    assert run.outcome == "failed"
    assert "401" in (run.detail or "") and "sk-test-key-123" not in (run.detail or "")
    assert len(openai_fake.requests) == before + 1


def test_a_model_that_cannot_answer_sends_the_installations_fallback_by_default(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    from relaydesk.ai.settings import DEFAULT_FALLBACKS, DEFAULT_PROMPTS

    config = ai_on()  # no fallback given: the default, in Polish (DEFAULT_REGION=PL)
    assert config["fallback_message"] == DEFAULT_FALLBACKS["pl"]
    assert config["system_prompt"] == DEFAULT_PROMPTS["pl"]
    openai_fake.fail_next(500, times=10)
    run = finished(db, inbound("+48600200034", "Czy jest dziś chleb?"))
    assert run.outcome == "failed"
    assert answers(db, "+48600200034")[-1].body == DEFAULT_FALLBACKS["pl"]

    ai_on(fallback_message="")  # an operator who wants silence gets it
    openai_fake.fail_next(500, times=10)
    run = finished(db, inbound("+48600200035", "A bułki?"))
    assert run.outcome == "failed" and run.reply_message_id is None
    assert answers(db, "+48600200035") == []


def test_the_default_help_and_start_answers_are_in_the_installations_language(
    db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.automation.settings import DEFAULT_HELPS, DEFAULT_STARTS

    stored = rules()
    assert stored["help_message"] == DEFAULT_HELPS["pl"]
    assert stored["start_message"] == DEFAULT_STARTS["pl"]
    run = finished(db, inbound("+48600200036", "HELP"))
    assert run.outcome == "keyword_reply"
    assert answers(db, "+48600200036")[-1].body == DEFAULT_HELPS["pl"]

    inbound("+48600200037", "STOP")  # recorded when stored; nothing runs for it
    run = finished(db, inbound("+48600200037", "START"))
    assert run.outcome == "keyword_reply"
    assert answers(db, "+48600200037")[-1].body == DEFAULT_STARTS["pl"]


def long_history(
    customer: str,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    rules: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    """Twelve earlier messages, stored while no mode was on; then the AI, reading the last
    two word for word, with a model that summarises as "Klient pytał o dostawę."."""
    rules()
    for i in range(12):
        inbound(customer, f"Wcześniejsza wiadomość {i}")

    def reply(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        return "Klient pytał o dostawę." if system.startswith("Summarise") else "Odpowiedź."

    openai_fake.reply_with(reply)
    ai_on(history_limit=2)


def test_long_histories_are_summarised_not_cut(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    rules: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    customer = "+48600200017"
    long_history(customer, inbound, ai_on, rules, openai_fake)
    sid = inbound(customer, "Co z moim zamówieniem?")
    assert finished(db, sid).outcome == "ai"
    summary_call, answer_call = openai_fake.requests[-2:]
    assert summary_call["messages"][0]["content"].startswith("Summarise")
    assert "Wcześniejsza wiadomość 0" in summary_call["messages"][1]["content"]
    system = answer_call["messages"][0]["content"]
    assert "Klient pytał o dostawę." in system
    assert answer_call["messages"][-1]["content"].endswith("Co z moim zamówieniem?")
    assert len(answer_call["messages"]) <= 3
    stored = db.scalar(select(ConversationSummary))
    assert stored is not None and stored.summary == "Klient pytał o dostawę."


def test_the_next_answer_leads_with_the_stored_summary_without_summarising_again(
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    rules: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    customer = "+48600200018"
    long_history(customer, inbound, ai_on, rules, openai_fake)
    assert finished(db, inbound(customer, "Co z moim zamówieniem?")).outcome == "ai"
    asked = len(openai_fake.requests)

    sid = inbound(customer, "A kiedy dojedzie?")
    assert finished(db, sid).outcome == "ai"
    [answer_call] = openai_fake.requests[asked:]  # no second summary
    system, *said = answer_call["messages"]
    assert system["content"].endswith("(summary): Klient pytał o dostawę.")
    # After what the summary covers (up to the window it was made for), word for word.
    assert [turn["content"] for turn in said] == [
        "Wcześniejsza wiadomość 11\nCo z moim zamówieniem?",
        "Odpowiedź.",
        "A kiedy dojedzie?",
    ]


def test_a_burst_of_messages_gets_one_answer_that_reads_them_all(
    db: Any,
    inbound: Inbound,
    ai_on: Callable[..., Any],
    rules: Callable[..., Any],
    openai_fake: FakeOpenAI,
) -> None:
    from relaydesk.automation import tasks

    ai_on()
    rules(debounce_seconds=60)  # the queued jobs wait; the test runs them in order
    customer = "+48600200018"
    sids = [inbound(customer, text) for text in ("Dzień dobry", "mam pytanie", "o cenę tortu")]
    runs = [wait_for(lambda s=s: run_of(db, s), what="the run") for s in sids]
    for run in runs:
        tasks.run(run.id)
    outcomes = [finished(db, s).outcome for s in sids]
    assert outcomes == ["merged", "merged", "ai"]
    [answer] = answers(db, customer)
    assert len(openai_fake.requests) == 1
    last_user = openai_fake.requests[0]["messages"][-1]
    assert last_user == {"role": "user", "content": "Dzień dobry\nmam pytanie\no cenę tortu"}
    assert all(finished(db, s).reply_message_id == answer.id for s in sids)


def test_ai_test_answers_in_context_and_sends_nothing(
    api: httpx.Client, db: Any, inbound: Inbound, ai_on: Callable[..., Any]
) -> None:
    ai_on()
    customer = "+48600200019"
    finished(db, inbound(customer, "Pierwsza wiadomość"))
    before = db.scalar(select(func.count()).select_from(Message))
    response = api.post("/api/ai/test", json={"participant": customer, "message": "Test?"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["reply"] == "Echo: Test?"
    assert [t["role"] for t in result["context"]] == ["system", "user", "assistant", "user"]
    assert result["prompt_tokens"] > 0 and result["segments"] == 1
    assert db.scalar(select(func.count()).select_from(Message)) == before


def test_ai_settings_validation_and_the_write_only_key(
    api: httpx.Client, make_token: Callable[[str], str], openai_fake: FakeOpenAI
) -> None:
    refused = api.put("/api/ai/config", json={"enabled": True, "provider": "openai"})
    assert refused.status_code == 422
    assert "API key" in refused.json()["detail"]
    saved = api.put(
        "/api/ai/config",
        json={"api_key": "sk-secret-value", "base_url": openai_fake.base_url, "enabled": True},
    )
    assert saved.status_code == 200
    assert "sk-secret-value" not in saved.text
    assert saved.json()["api_key_set"] is True and saved.json()["api_key_source"] == "panel"
    bad = api.put("/api/ai/config", json={"temperature": 5})
    assert bad.status_code == 422
    headers = {"Authorization": f"Bearer {make_token('operator')}"}
    as_operator = api.put("/api/ai/config", json={"api_key": "sk-x"}, headers=headers)
    assert as_operator.status_code == 403
    prompt = api.put("/api/ai/config", json={"system_prompt": "Krótko."}, headers=headers)
    assert prompt.status_code == 200 and prompt.json()["system_prompt"] == "Krótko."
    empty = api.put("/api/auto-reply", json={"enabled": True, "message": "  "})
    assert empty.status_code == 422
    audit = api.get("/api/audit").json()
    assert "sk-secret-value" not in str(audit)


def test_ai_test_reports_a_missing_provider_clearly(api: httpx.Client) -> None:
    response = api.post("/api/ai/test", json={"message": "Hej"})
    assert response.status_code == 409
    assert "API key" in response.json()["detail"]


def test_a_base_url_into_the_servers_own_network_is_refused(
    api: httpx.Client, monkeypatch: Any
) -> None:
    from relaydesk.core.config import get_settings

    monkeypatch.setattr(get_settings(), "llm_allow_private_networks", False)
    for url in ("http://127.0.0.1:11434/v1", "http://169.254.169.254/v1", "http://10.0.0.7/v1"):
        refused = api.put("/api/ai/config", json={"base_url": url})
        assert refused.status_code == 422, url
        assert "LLM_ALLOW_PRIVATE_NETWORKS" in refused.json()["detail"]
    assert api.get("/api/ai/config").json()["base_url"] is None


def test_a_customer_who_unsubscribes_while_the_model_thinks_gets_nothing(
    api: httpx.Client, db: Any, inbound: Inbound, rules: Callable[..., Any]
) -> None:
    from relaydesk.automation import answering, pipeline
    from relaydesk.core.db import session_scope, utcnow

    rules(debounce_seconds=60)  # the queued job waits; this test plays the worker
    auto_reply(api)
    sid = inbound("+48600200020", "Pytanie")
    run = wait_for(lambda: run_of(db, sid), what="the run")
    with session_scope() as session:  # claimed, then STOP arrives before the answer is stored
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id == run.id)
            .values(state="working", claim_token="t0k3n", lease_until=utcnow() + timedelta(1))
        )
        session.execute(
            update(Contact).where(Contact.phone == "+48600200020").values(opted_out_at=utcnow())
        )
    answer = answering.Answer("ai", "ai", "Odpowiedź")
    assert pipeline._finish(run.id, "t0k3n", answer) == "opted_out"
    assert finished(db, sid).detail == "the customer unsubscribed meanwhile"
    assert answers(db, "+48600200020") == []


def test_the_sweep_hands_lost_runs_over_in_chunks_each_answered_once(
    api: httpx.Client,
    db: Any,
    inbound: Inbound,
    rules: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a crash many runs may be due at once: the sweep queues them a chunk a job
    (claimed, decided and stored together), spread over the worker threads."""
    from relaydesk.automation import pipeline, tasks
    from relaydesk.core.db import session_scope, utcnow

    monkeypatch.setattr(tasks, "SWEEP_CHUNK", 4)
    chunks: list[int] = []
    run_many = pipeline.run_many

    def spied(run_ids: list[int], **kwargs: Any) -> Any:
        chunks.append(len(run_ids))
        return run_many(run_ids, **kwargs)

    monkeypatch.setattr(pipeline, "run_many", spied)
    rules(debounce_seconds=60)  # the runs' own jobs wait: only the sweep's run them
    auto_reply(api)
    numbers = [f"+4860020070{i}" for i in range(6)]
    sids = [inbound(number, "Dzień dobry") for number in numbers]
    runs = [wait_for(lambda sid=sid: run_of(db, sid), what="the run") for sid in sids]
    with session_scope() as session:  # their worker died holding them
        session.execute(
            update(AutomationRun)
            .where(AutomationRun.id.in_([run.id for run in runs]))
            .values(state="working", claim_token="c0ffee", lease_until=utcnow() - timedelta(1))
        )
    tasks.sweep()
    for sid, number in zip(sids, numbers, strict=True):
        assert finished(db, sid).outcome == "auto_reply"
        assert len(answers(db, number)) == 1
    assert sorted(chunks) == [2, 4]
