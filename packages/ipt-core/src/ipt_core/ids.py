"""New random ids: UUID version 4 strings, cut from a batch of the kernel's random bytes.

`str(uuid.uuid4())` asks the kernel for 16 random bytes on every call (one system call) and
builds a `UUID` object to format it: ~2.5 µs, paid by every request (its audit record), every
create and every event (bench/PROFILE.md, "Eleventh round"). `new_id` takes its 16 bytes from
a 4 KiB batch of `os.urandom` (the same source) and formats them directly: ~0.7 µs. A child
process forked with a batch in hand starts its own, so two processes never share bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_id"]

_BATCH_BYTES = 16 * 256
_random = bytearray()
_lock = threading.Lock()  # two threads must never cut the same 16 bytes


def new_id() -> str:
    """A new random UUID (version 4, RFC 9562 variant), as its 36-character string."""
    with _lock:
        if not _random:
            _random[:] = os.urandom(_BATCH_BYTES)
        b = _random[-16:]
        del _random[-16:]
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # variant 10xx
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


os.register_at_fork(after_in_child=_random.clear)
