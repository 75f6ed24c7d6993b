"""Waiting out a database outage in the worker's loops: backoff, and one log line per outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Final

from ipt_core.db.faults import OutageLog, database_fault
from ipt_worker.publishers import DeliveryPolicy, retry_delay_s

__all__ = ["Reconnection"]

_MAX_WAIT_S: Final = 10.0


class Reconnection:
    """A loop's view of the database: failures back off (with jitter) and are logged once."""

    def __init__(self, logger: logging.Logger, what: str, *, initial_s: float) -> None:
        """Wait `initial_s` after the first failure, doubling up to 10 s (or `initial_s`)."""
        self.outage = OutageLog(logger, what)
        self._logger = logger
        self._what = what
        self._policy = DeliveryPolicy(
            backoff_initial_s=initial_s, backoff_max_s=max(_MAX_WAIT_S, initial_s)
        )
        self._attempts = 0
        self._rng = random.Random()

    def succeeded(self) -> None:
        """The database answered: end the outage (logged once) and reset the backoff."""
        self.outage.recovered()
        self._attempts = 0

    async def failed(self, error: Exception, stop: asyncio.Event) -> None:
        """Note `error` and wait before the next attempt (returns early when `stop` is set).

        Database trouble counts towards the outage (one line); anything else is a bug of one
        iteration and is logged by type, never by message (it may quote patient data).
        """
        fault = database_fault(error)
        if fault is not None:
            self.outage.failed(fault)
        else:
            self._logger.warning("%s: %s; retrying", self._what, type(error).__name__)
        self._attempts += 1
        delay = retry_delay_s(self._policy, self._attempts, None, self._rng)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
