"""New ids: UUID strings cut from a batch of the kernel's random bytes.

`str(uuid.uuid4())` asks the kernel for 16 random bytes on every call (one system call) and
builds a `UUID` object to format it: ~2.5 µs, paid by every request (its audit record), every
create and every event (bench/PROFILE.md, "Eleventh round"). Here the random bytes come from a
4 KiB batch of `os.urandom` (the same source) and are formatted directly: ~1 µs. A child
process forked with a batch in hand starts its own, so two processes never share bytes.

Rows that are only ever appended, and kept for years (audit records, events), take
time-ordered ids (`new_time_ordered_id`): each lands at the right-hand end of its table's
unique index, where a random id lands on any page of it, and in a table of millions of rows
that page is rarely in memory. A COPY of 500 audit records into 3,000,000: 9-15 ms with random
ids, 4.5 ms with time-ordered ones. Their time is no secret: both rows carry it anyway.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id", "new_time_ordered_id"]

_BATCH_BYTES = 4096
_random = bytearray()
_lock = threading.Lock()  # two threads must never cut the same bytes


def new_id() -> str:
    """A new random UUID (version 4, RFC 9562 variant), as its 36-character string."""
    return _formatted(_random_bytes(16), 0x40)


def new_time_ordered_id() -> str:
    """A new UUID version 7: the Unix time in milliseconds, then 74 random bits (RFC 9562).

    Ids of later milliseconds sort after earlier ones, as strings too.
    """
    b = _random_bytes(16)
    b[:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    return _formatted(b, 0x70)


def _random_bytes(count: int) -> bytearray:
    with _lock:
        if len(_random) < count:
            _random[:] = os.urandom(_BATCH_BYTES)
        cut = _random[-count:]
        del _random[-count:]
    return cut


def _formatted(b: bytearray, version: int) -> str:
    b[6] = b[6] & 0x0F | version
    b[8] = b[8] & 0x3F | 0x80  # variant 10xx
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


os.register_at_fork(after_in_child=_random.clear)
