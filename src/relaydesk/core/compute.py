"""CPU-heavy native work that nobody waits for, at the lowest CPU priority.

Building a knowledge index embeds thousands of passages with native code that uses
every core (the local embedder's thread pool). Run in a bulk worker thread, it shared
that thread's priority with the bulk jobs that hold the database's write lock (a
campaign recording its sends), so under load those jobs, and the live answers waiting
for the same lock, waited for the CPU behind the number crunching. Here such work runs
in one thread per process at nice 19 (the native thread pool, started from it,
inherits that), one call at a time, and the caller waits for the result.

Voice notes stay in their bulk thread: a customer waits for the answer to one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

LOWEST_NICE = 19

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _lowest_priority() -> None:
    # Not Linux (per-thread priorities) or not permitted: the work just runs as it is.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="heavy", initializer=_lowest_priority
            )
        return _pool


def heavy(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args, **kwargs)` in the process's compute thread; its result or its error."""
    if threading.current_thread().name.startswith("heavy"):
        return func(*args, **kwargs)  # already there (a heavy call inside another)
    return _executor().submit(func, *args, **kwargs).result()
