"""Time per WhatsApp voice note: download, convert, transcribe (the local Whisper model).

A real `relaydesk serve` (sandbox mode) runs the embedded emulator. For each length,
espeak-ng reads a text long enough to fill it, ffmpeg encodes it as a phone would
(OGG/Opus), and the sandbox phone sends it, so the file sits behind basic auth like
Twilio's. The benchmark then does what the media job does, stage by stage, timed:
download through the 307 redirect (credentials to the API path only), conversion to
16 kHz mono WAV with ffmpeg, and transcription with faster-whisper and the packaged
multilingual Whisper base model (loaded once before timing; its load is printed).

    .venv/bin/python bench/voice_note.py                 # 5 s and 30 s notes, 5 runs each
    .venv/bin/python bench/voice_note.py --seconds 5 30 60 --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH_ACCOUNT_SID,
    BENCH_AUTH_TOKEN,
    Server,
    code_under_test,
    environment,
    free_port,
    run_cli,
    server_env,
)
from relaydesk.media import audio, transcribe
from relaydesk.media.download import Source, download

SENTENCES = (
    "Good morning, I would like to book a table for four people on Friday evening. "
    "Could you also tell me whether you have a vegetarian menu and free parking nearby? "
    "My name is Anna and my phone number is the one I am writing from. "
    "If Friday is full, Saturday at seven would also be fine for us. "
)


def spoken(seconds: float) -> bytes:
    """About `seconds` of speech as a WhatsApp voice note (OGG/Opus)."""
    text = SENTENCES * (int(seconds // 10) + 1)
    with tempfile.TemporaryDirectory() as folder:
        wav, ogg = Path(folder) / "speech.wav", Path(folder) / "note.ogg"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-w", str(wav), "--stdin"], input=text.encode(), check=True
        )
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-t", str(seconds),
             "-c:a", "libopus", "-b:a", "24k", str(ogg)],
            check=True,
        )  # fmt: skip
        return ogg.read_bytes()


def send_note(base: str, note: bytes) -> str:
    """The sandbox phone sends the note; returns the Twilio media URL relaydesk receives."""
    answer = httpx.post(
        f"{base}/sandbox/phone/messages",
        data={"from": "whatsapp:+48600900900"},
        files=[("media", ("note.ogg", note, "audio/ogg"))],
        auth=(BENCH_ACCOUNT_SID, BENCH_AUTH_TOKEN),
        timeout=30,
    )
    answer.raise_for_status()
    sent = answer.json()
    media_sid = sent["media"][0]["sid"]
    return (
        f"{base}/sandbox/twilio/2010-04-01/Accounts/{BENCH_ACCOUNT_SID}"
        f"/Messages/{sent['sid']}/Media/{media_sid}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"code: {code_under_test()}\n{environment()}")

    started = time.perf_counter()
    transcribe.transcribe(audio.to_wav16k(spoken(2)))
    print(f"model load and first transcription: {time.perf_counter() - started:.2f} s")

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        port = free_port()
        # The server downloads the note too (its media job); it must not transcribe it at
        # the same time on the same two cores: its provider is OpenAI without a key.
        env = server_env(data_dir, port, TRANSCRIPTION_PROVIDER="openai", OPENAI_API_KEY="")
        run_cli(["migrate"], env, data_dir)
        server = Server(data_dir, port, env, data_dir / "server.log")
        server.start()
        base = f"http://127.0.0.1:{port}"
        source = Source(f"{base}/sandbox/twilio", BENCH_ACCOUNT_SID, BENCH_AUTH_TOKEN, True)
        try:
            print(
                f"\n{'note':>6} {'size':>8} {'download':>9} {'convert':>8} "
                f"{'transcribe':>10} {'total':>8}   (medians of {args.runs} runs; ms)"
            )
            for seconds in args.seconds:
                note = spoken(seconds)
                timings: dict[str, list[float]] = {"d": [], "c": [], "t": [], "all": []}
                words = ""
                for _ in range(args.runs):
                    url = send_note(base, note)
                    t0 = time.perf_counter()
                    got = download(url, source, max_bytes=16 * 1024 * 1024, timeout=30)
                    t1 = time.perf_counter()
                    wav = audio.to_wav16k(got.data)
                    t2 = time.perf_counter()
                    words = transcribe.transcribe(wav).text
                    t3 = time.perf_counter()
                    assert got.data == note
                    for key, value in (("d", t1 - t0), ("c", t2 - t1), ("t", t3 - t2)):
                        timings[key].append(value * 1000)
                    timings["all"].append((t3 - t0) * 1000)
                med = {k: statistics.median(v) for k, v in timings.items()}
                print(
                    f"{seconds:>5.0f}s {len(note) / 1024:>6.1f}KB {med['d']:>9.1f} "
                    f"{med['c']:>8.1f} {med['t']:>10.1f} {med['all']:>8.1f}   "
                    f"real-time factor {med['all'] / 1000 / seconds:.3f}"
                )
                print(f"        heard: {words[:110]!r}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
