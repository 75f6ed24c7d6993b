"""The worker's loops, run until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ipt_worker.recompute import Recomputer

__all__ = ["run_recompute_loop"]

_log = logging.getLogger(__name__)


async def run_recompute_loop(
    recomputer: Recomputer, stop: asyncio.Event, *, poll_interval_s: float
) -> None:
    """Compute due courses until `stop` is set; idle polls cost one index probe each."""
    while not stop.is_set():
        try:
            claimed = await recomputer.run_once()
        except Exception as error:  # the database may be restarting: retry, do not die
            _log.warning("recompute loop: %s; retrying", type(error).__name__)
            claimed = 0
        if claimed == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval_s)
