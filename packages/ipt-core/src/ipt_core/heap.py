"""The process's long-lived heap, kept out of the cyclic garbage collector's full passes.

After start-up a service process holds a few hundred thousand objects that live as long as
it does: every module, class and function, and the FHIR models' and pydantic's schemas.
CPython's full (generation 2) collection walks all of them; measured under 8 connections of
reads, each full pass stopped the event loop for 120-160 ms and was the whole p99 of a read
(bench/PROFILE.md, "Garbage collector pauses"). `gc.freeze()` moves the objects alive now to a
permanent generation the collector never scans; later full passes cost a few milliseconds.
Frozen objects are still freed by reference counting; only cycles among them stay.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]

_frozen = False


def freeze_startup_heap() -> None:
    """Collect once, then freeze what is left; once per process (later calls do nothing).

    Call it when start-up is over (the app's lifespan, the worker's loops about to start):
    what is alive then lives as long as the process.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
