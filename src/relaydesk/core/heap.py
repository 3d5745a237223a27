"""Keep the garbage collector from stalling a busy process.

A started relaydesk process holds about 150,000 objects that live as long as it does:
modules, classes, the app, the SDKs. Every full collection (every few seconds under
load) walked all of them with the GIL held, 60-200 ms on a small server, and every
thread stood still meanwhile; a campaign's calls then went out late and in clumps.
`gc.freeze()` moves what start-up created to the permanent generation, which
collections skip; what is created later is collected as before.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_settled = False


def settle_after_startup() -> None:
    """Collect once, then leave everything alive now out of future collections.

    Once per process: a second app started in the same process (the tests) changes
    nothing.
    """
    global _settled
    with _lock:
        if _settled:
            return
        _settled = True
        gc.collect()
        gc.freeze()
