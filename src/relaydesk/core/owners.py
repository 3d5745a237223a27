"""Which process holds a claim, and whether that process is provably gone.

Claims on work (a message's Twilio call, a campaign's dispatcher) carry a lease, so a
process that died is replaced once the lease runs out. The lease must outlast any
honest call, so it is long (minutes). On the same machine we can do better: a claim
names its process by boot, PID namespace, PID and the PID's start time, and a process
on this machine that finds no such process alive knows the claim is abandoned and
takes it over at once — after a restart, interrupted work resumes in seconds.

Owners on other machines (or where /proc is missing) are never judged: their claims
wait for the lease as before.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

_PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot), or None if there is none."""
    stat = _read(_PROC / str(pid) / "stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has ended, only not reaped
        return None
    return fields[19]


@lru_cache(maxsize=1)
def _machine() -> str | None:
    """This boot of this machine, and this PID namespace (containers have their own)."""
    boot = _read(_PROC / "sys" / "kernel" / "random" / "boot_id")
    try:
        namespace = os.stat(_PROC / "self" / "ns" / "pid").st_ino
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def me() -> str:
    """This process as a claim owner ("<boot>/<pid namespace>:<pid>:<start>")."""
    return _owner(os.getpid())


@lru_cache(maxsize=4)
def _owner(pid: int) -> str:
    machine = _machine()
    if machine is None:
        return f"?:{pid}"
    return f"{machine}:{pid}:{_start_ticks(pid)}"


def is_dead(owner: str | None) -> bool:
    """True only when `owner` was a process on this machine that is no longer running."""
    if not owner:
        return False
    machine, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if machine != _machine() or not pid_text.isdigit():
        return False
    return _start_ticks(int(pid_text)) != started


def dead_among(owners: set[str | None]) -> list[str]:
    """The owners in `owners` that are provably gone (sorted, for stable queries)."""
    return sorted(o for o in owners if o is not None and is_dead(o))


def dead_holders(session: Session, column: Any, *where: Any) -> list[str]:
    """The owners named in `column` (of the rows matching `where`) that are provably gone."""
    held = session.scalars(select(column).where(column.is_not(None), *where).distinct())
    return dead_among(set(held))
