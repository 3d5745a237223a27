"""The loop guard's rules: loops with another machine stop, people keep their answers."""

from __future__ import annotations

from relaydesk.automation.loops import Line, loop_reason, normalised

AUTO = "Dziękujemy za wiadomość, odpiszemy wkrótce."


def customer(text: str) -> Line:
    return Line(inbound=True, automatic=False, text=text)


def bot(text: str) -> Line:
    return Line(inbound=False, automatic=True, text=text)


def operator(text: str) -> Line:
    return Line(inbound=False, automatic=False, text=text)


def test_normalised_keeps_the_words_only() -> None:
    assert normalised("  Zamówienie nr 17/2025 — OK?! ") == "zamówienie nr ok"
    assert normalised("Zamówienie NR 18") == normalised("zamówienie nr 19")
    assert normalised("👍 123") == ""
    assert normalised(None) == ""


def test_a_bot_answering_every_answer_the_same_way_is_a_loop_the_third_time() -> None:
    other = "Thank you for your message no. {}. We will get back to you."
    earlier = [customer(other.format(1)), bot(AUTO), customer(other.format(2)), bot(AUTO)]
    assert loop_reason(other.format(2), earlier[:2]) is None  # the second time: answered
    reason = loop_reason(other.format(3), earlier)
    assert reason is not None and "3 times" in reason


def test_a_long_repeated_text_is_a_loop_even_when_our_ai_varies_its_answers() -> None:
    other = "Automatic answer: our office is closed until Monday."
    earlier = [customer(other), bot("Rozumiem."), customer(other), bot("Dobrze, dziękuję.")]
    assert loop_reason(other, earlier) is not None


def test_a_short_word_repeated_to_a_varying_ai_is_a_person_agreeing() -> None:
    earlier = [
        customer("Chcę zamówić tort"),
        bot("Na kiedy?"),
        customer("tak"),
        bot("Czy sobota pasuje?"),
        customer("tak"),
        bot("Czy odbierze Pan osobiście?"),
    ]
    assert loop_reason("tak", earlier) is None


def test_our_own_answer_sent_back_is_a_loop_at_once() -> None:
    earlier = [customer("Dzień dobry"), bot(AUTO)]
    reason = loop_reason(AUTO.upper(), earlier)
    assert reason is not None and "our own automatic answer" in reason
    # A short answer of ours coming back ("OK") may be a person's.
    assert loop_reason("OK", [customer("Dzięki"), bot("OK")]) is None
    # What an operator wrote is not the bot's answer.
    asked = "Proszę podać numer zamówienia"
    assert loop_reason(asked, [operator(asked)]) is None


def test_repeats_answered_by_a_person_do_not_count() -> None:
    other = "Wiadomość automatyczna: jesteśmy poza biurem."
    earlier = [customer(other), operator("W porządku"), customer(other), operator("Dobrze")]
    assert loop_reason(other, earlier) is None


def test_thirty_different_messages_are_never_a_loop() -> None:
    earlier: list[Line] = []
    for n in range(30):
        # Every pair of topic and product once (5 x 6): no two messages say the same.
        topic = ["cena", "dostawa", "godziny", "adres", "faktura"][n % 5]
        thing = ["tortu", "chleba", "bułek", "ciasta", "pączków", "rogali"][n % 6]
        text = f"Pytanie {n}: {topic} {thing}"
        assert loop_reason(text, earlier) is None
        earlier += [customer(text), bot(f"Odpowiedź {n} na: {text}")]
    assert loop_reason("Dziękuję, to wszystko", earlier) is None


def test_empty_or_number_only_messages_are_left_to_the_hourly_cap() -> None:
    earlier = [customer("123"), bot(AUTO), customer("456"), bot(AUTO)]
    assert loop_reason("789", earlier) is None
