"""A pause of Python's cyclic garbage collector around work that allocates much and frees it together."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch of events is read and summarised.

    A batch allocates a few container objects per event (rows, decoded JSON, sampled rows) and
    frees them together at its end, without cycles; the collector, triggered by the allocations,
    walks every live object of the process again and again meanwhile, which cost a fifth of the
    summariser's time. Reference counting still frees everything; cycles made elsewhere in the
    process meanwhile are collected when the pause ends. Pauses nest and may overlap across
    threads: the collector runs again when the last one ends (if it ran before the first).
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()
