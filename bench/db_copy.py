"""Benchmark: `relaydesk db copy` of a SQLite installation into an empty PostgreSQL.

What it measures
    The wall time of the real command, `relaydesk db copy --to postgresql://…`, from
    start to exit (Python's start-up, the schema by the migrations, the copy, foreign
    keys, sequences, the read-back of every table for counts and checksums, the commit),
    the time the command reports itself, and rows/s overall and for `messages`; also the
    command's CPU time, steadier than wall time on a machine shared with other work.

How
    Migrates a fresh DATA_DIR (`relaydesk migrate`), seeds --messages over
    --conversations with bench/seed.py (contacts, conversations, messages with Twilio's
    raw webhook JSON, the counters), starts a throwaway PostgreSQL cluster from the
    installed binaries (tests/pgserver.py: fsync off, as in the test suite), and runs
    the command with a password in the URL (trust authentication ignores it). Then it
    checks, apart from the command's own verification:
      - the command exited 0 and its summary says ok for every table
      - row counts of every seeded table are equal in SQLite and PostgreSQL
      - an aggregate over messages (count, sum of ids, characters of the bodies, SQL
        NULL raw, first and last created_at) is equal in both
      - the next message id on PostgreSQL is the largest copied id + 1
      - the password never appears in the command's output

Run (about a minute for 100,000 messages on 2 cores):

    .venv/bin/python bench/db_copy.py --messages 100000
    .venv/bin/python bench/db_copy.py --messages 1000000 --conversations 50000
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    REPO,
    environment,
    exit_on_sigterm,
    free_port,
    relaydesk_command,
    run_cli,
    server_env,
)
from seed import seed_database

sys.path.insert(0, str(REPO))  # the throwaway PostgreSQL of the test suite
from tests.pgserver import PgCluster, find_bindir

PASSWORD = "bench-Hasło-42"
SEEDED = ("contacts", "conversations", "messages", "message_counters")
AGGREGATE = (
    "SELECT count(*), sum(id), max(id), sum(length(body)), count(*) FILTER (WHERE raw IS NULL), "
    "{min}, {max} FROM messages"
)
COPIED = re.compile(r"copied ([\d,]+) rows of (\d+) tables in ([\d.]+) s \(([\d,]+) rows/s\)")
MESSAGES = re.compile(r"^\s+messages\s+([\d,]+) / ([\d,]+) rows\s+([\d.]+) s\s+([\d,]+) rows/s$")


def source_facts(db: Path) -> tuple[dict[str, int], tuple[object, ...]]:
    """Row counts of the seeded tables and the messages aggregate, read from SQLite."""
    with sqlite3.connect(db) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SEEDED}  # noqa: S608
        # Stored as text; the seed writes them all in one format, so text order is time order.
        aggregate = conn.execute(
            AGGREGATE.format(min="min(created_at)", max="max(created_at)")
        ).fetchone()
    return counts, aggregate


def target_facts(conninfo: str) -> tuple[dict[str, int], tuple[object, ...], int]:
    """The same, read from PostgreSQL, and the id the next message would get."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}".encode()).fetchone()[0]  # noqa: S608
            for t in SEEDED
        }
        stamp = "to_char({}(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        aggregate = conn.execute(
            AGGREGATE.format(min=stamp.format("min"), max=stamp.format("max")).encode()
        ).fetchone()
        next_id = conn.execute("SELECT nextval(pg_get_serial_sequence('messages', 'id'))")
        return counts, tuple(aggregate or ()), int(next_id.fetchone()[0])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check(ok: bool, what: str) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return ok


def run(args: argparse.Namespace, work: Path) -> bool:
    """Seed, copy, check; True when every check passed."""
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (initdb, pg_ctl): apt-get install postgresql")
    data_dir = work / "data"
    data_dir.mkdir()
    env = server_env(data_dir, free_port())
    run_cli(["migrate"], env, data_dir)
    print(f"seeding {args.messages:,} messages over {args.conversations:,} conversations")
    seeded = seed_database(data_dir / "app.db", args.messages, args.conversations)
    print(f"  seeded in {seeded.seconds:.1f} s ({(data_dir / 'app.db').stat().st_size:,} bytes)")
    source_counts, source_aggregate = source_facts(data_dir / "app.db")

    cluster = PgCluster(bindir)
    url = cluster.start()  # postgresql+psycopg://postgres@127.0.0.1:PORT/relaydesk_test
    try:
        target = url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
        print(f"copying into a fresh PostgreSQL ({cluster.port}), {args.batch_rows:,} rows a batch")
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [
                relaydesk_command(),
                "db",
                "copy",
                "--to",
                target,
                "--batch-rows",
                str(args.batch_rows),
            ],
            env=env,
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=7200,
            check=False,
        )
        wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
        output = done.stdout + done.stderr
        if args.verbose or done.returncode:
            print(output)
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        target_counts, target_aggregate, next_id = (
            target_facts(conninfo) if done.returncode == 0 else ({}, (), 0)
        )
    finally:
        cluster.stop()

    copied = COPIED.search(done.stdout)
    # The last progress line of messages is the whole table's.
    progress = [m for line in done.stdout.splitlines() if (m := MESSAGES.match(line))]
    messages = progress[-1] if progress else None
    summary = [
        line.split()
        for line in done.stdout.splitlines()
        if line and not line.startswith((" ", "TABLE", "copying", "copied", "next", "not copied"))
    ]
    print()
    if copied:
        rows, tables, seconds, rate = copied.groups()
        print(f"  copied {rows} rows of {tables} tables")
        print(f"  command wall time     {wall:8.1f} s  (Python start-up and imports included)")
        print(
            f"  command CPU time      {cpu:8.1f} s  (the relaydesk process; PostgreSQL's own apart)"
        )
        print(f"  reported by the copy  {float(seconds):8.1f} s  {rate:>10} rows/s overall")
    if messages:
        print(f"  messages alone        {float(messages[3]):8.1f} s  {messages[4]:>10} rows/s")
    print()
    ok = check(done.returncode == 0, f"the command exited {done.returncode}")
    ok &= check(
        bool(summary) and all(row[-1] == "ok" for row in summary),
        f"its summary says ok for every table ({len(summary)} tables)",
    )
    ok &= check(
        target_counts == source_counts,
        "row counts equal: " + ", ".join(f"{t} {n:,}" for t, n in source_counts.items()),
    )
    ok &= check(
        target_aggregate == tuple(source_aggregate),
        "messages aggregate equal (count, ids, body characters, NULL raw, created_at range)",
    )
    largest = int(source_aggregate[2])
    ok &= check(next_id == largest + 1, f"the next message id is {next_id} (largest copied + 1)")
    hidden = PASSWORD not in output and "Has%C5%82o" not in output
    ok &= check(hidden, "the password never appears in the output")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description="relaydesk db copy: SQLite -> PostgreSQL.")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=None, help="default messages/20")
    parser.add_argument("--batch-rows", type=int, default=5_000)
    parser.add_argument("--verbose", action="store_true", help="print the command's output")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be positive")
    args.conversations = args.conversations or max(1, args.messages // 20)
    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="relaydesk-dbcopy-"))
    print(environment())
    try:
        ok = run(args, work)
    finally:
        if args.keep:
            print(f"  data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
