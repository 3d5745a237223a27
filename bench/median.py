"""Run a benchmark several times and print the median of the figures on chosen lines.

One run of a benchmark on a small machine moves by several percent from one run to the
next (the campaign at 500/s gave 454-489/s on the same tree), which is as much as the
difference an A/B comparison looks for. This runs the command --runs times, finds in
each run's output the first line containing each --line text, and prints that line with
every number replaced by its median over the runs (and the spread, min..max).

    .venv/bin/python bench/median.py --runs 5 --line "  500   10000" -- \\
        bench/campaign_rate.py --rates 500 --recipients 10000
    .venv/bin/python bench/median.py --runs 5 --line "empty database" \\
        --line "200,000-message history" -- bench/webhook_ingest.py --count 10000 --history 200000

(PYTHONPATH selects the relaydesk revision, as for every benchmark.)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def numbers(line: str) -> list[float]:
    """The numbers of a line, in order (thousands separators dropped)."""
    return [float(match.replace(",", "")) for match in NUMBER.findall(line)]


def median_line(lines: list[str]) -> str:
    """The first line with each number replaced by 'median (min..max)' over all lines."""
    columns = [numbers(line) for line in lines]
    width = min(len(c) for c in columns)
    parts = NUMBER.split(lines[0])
    out = [parts[0]]
    for i in range(len(parts) - 1):
        if i < width:
            values = [c[i] for c in columns]
            mid = statistics.median(values)
            spread = f" ({min(values):g}..{max(values):g})" if min(values) != max(values) else ""
            out.append(f"{mid:g}{spread}")
        out.append(parts[i + 1])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="how many runs (default 5)")
    parser.add_argument(
        "--line", action="append", required=True, help="text that marks a line to report"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark")
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"]
    if not command or args.runs < 1:
        parser.error("give --runs >= 1 and the benchmark after --")
    found: dict[str, list[str]] = {mark: [] for mark in args.line}
    failed = 0
    for run in range(1, args.runs + 1):
        done = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, check=False
        )
        failed += done.returncode != 0
        for mark in args.line:
            line = next((x for x in done.stdout.splitlines() if mark in x), None)
            if line is not None:
                found[mark].append(line)
        print(f"run {run}/{args.runs}: exit {done.returncode}", flush=True)
    for mark, lines in found.items():
        if not lines:
            print(f"{mark!r}: not in any run's output")
            continue
        print(f"median of {len(lines)} runs:\n{median_line(lines)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
