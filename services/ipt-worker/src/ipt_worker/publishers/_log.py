"""The development report of what the relay published: one line per batch, never data."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from ipt_core.events import Published

__all__ = ["log_batch"]

_log = logging.getLogger("ipt.events")


def log_batch(batch: Sequence[Published]) -> None:
    """Log one line at INFO: the batch's lowest and highest `seq`, and events per type.

    One line per batch rather than per event: a line per event cost a bulk load ~3% of the
    process's CPU in `ipt run` (bench/PROFILE.md, "Eighth round"). Positions are the
    outbox's global `seq`.
    """
    if not batch:
        return
    types = ", ".join(f"{t} {n}" for t, n in sorted(Counter(e.type for e in batch).items()))
    _log.info(
        "events published: seq %d-%d, %d (%s)",
        min(e.seq for e in batch),
        max(e.seq for e in batch),
        len(batch),
        types,
    )
