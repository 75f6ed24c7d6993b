"""The recompute loop: claim due courses, compute their status, store it, emit events.

A claimed batch is stored in ONE transaction with set-based statements (`status_batch.py`):
`course_status` (version bumped when a status field changed) and its history rows, the
status events in the outbox, the symptom Goals' `achievementStatus` and the CarePlans' phase
extension (written through the FHIR store with the cause `WriteCause.STATUS_WRITEBACK`, so
their history shows the change and the IPT projections skip them), and each course's next
wake-up time.

Failure isolation: if the batch's transaction fails, nothing of it is stored, and the batch
is stored again course by course, each in its own transaction, so one bad course backs off
alone (`retry_later`) and the others are stored (docs/architecture.md, "Status engine").
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opentelemetry import metrics
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.fhir.model import WriteCause
from ipt_core.fhir.store import ResourceStore, WriteListener
from ipt_core.queue import Claim, WorkerLiveness, claim_due, release, retry_later, retry_many
from ipt_core.status import DEFAULT_RULES, CourseFacts, StatusRules
from ipt_core.status.loader import UnreadableCourse, load_facts
from ipt_worker.status_batch import store_batch

__all__ = ["Recomputer"]

_log = logging.getLogger(__name__)
_meter = metrics.get_meter("ipt_worker.recompute")
_durations = _meter.create_histogram(
    "ipt.recompute.duration",
    unit="s",
    description="Time to compute and store one course (its share of its batch)",
)
Clock = Callable[[], datetime]
Facts = Mapping[str, CourseFacts | None]


@dataclass
class Recomputer:
    """Computes due courses; safe to run in many processes against one database."""

    engine: AsyncEngine
    clock: Clock
    listeners: Sequence[WriteListener] = ()
    rules: StatusRules = DEFAULT_RULES
    batch_size: int = 100
    lease: timedelta = timedelta(seconds=60)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    liveness: WorkerLiveness = field(init=False)

    def __post_init__(self) -> None:
        self.liveness = WorkerLiveness(self.engine, self.worker_id)

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Compute one batch of due courses; return how many were claimed (0: nothing due).

        When `stop` is set (SIGTERM) the courses not computed yet are released at once for
        another worker, so a shutdown never leaves them waiting for their lease.
        """
        await self.liveness.ensure()  # claims are only valid while our liveness lock is held
        now = self.clock()
        async with self.engine.begin() as conn:
            claims = await claim_due(
                conn, worker=self.worker_id, now=now, lease=self.lease, limit=self.batch_size
            )
        if not claims:
            return 0
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            # Autocommit: no BEGIN and no ROLLBACK around the reads, which then run on the
            # driver (status/loader.py); each of them sees its own snapshot, as under the
            # READ COMMITTED of a transaction.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            loaded = await load_facts(conn, [claim.course_id for claim in claims])
        unreadable = [
            (claim, found.error)
            for claim in claims
            if isinstance(found := loaded.get(claim.course_id), UnreadableCourse)
        ]
        if unreadable:
            _log.warning("%d courses' facts cannot be read", len(unreadable))
            async with self.engine.begin() as conn:
                await retry_many(conn, unreadable, now=now)
        failed = {claim.course_id for claim, _ in unreadable}
        readable = [claim for claim in claims if claim.course_id not in failed]
        facts: dict[str, CourseFacts | None] = {
            claim.course_id: _readable(loaded.get(claim.course_id)) for claim in readable
        }
        if stop is not None and stop.is_set():
            await self._release(readable)
        elif readable:
            await self._store(readable, facts, now, stop)
        elapsed = time.perf_counter() - started
        for _ in claims:
            _durations.record(elapsed / len(claims))
        return len(claims)

    async def close(self) -> None:
        """Release the liveness lock; any lease still held is then free for other workers."""
        await self.liveness.close()

    async def _store(
        self, claims: Sequence[Claim], facts: Facts, now: datetime, stop: asyncio.Event | None
    ) -> None:
        try:
            await self._store_in_one_transaction(claims, facts, now)
            return
        except Exception as error:
            if len(claims) == 1:
                await self._back_off(claims[0], error, now)
                return
            _log.warning(
                "a batch of %d courses failed (%s): storing them one by one",
                len(claims),
                type(error).__name__,
            )
        for done, claim in enumerate(claims):
            if stop is not None and stop.is_set():
                await self._release(claims[done:])
                return
            try:
                await self._store_in_one_transaction([claim], facts, now)
            except Exception as error:  # one course's failure must not stop the others
                await self._back_off(claim, error, now)

    async def _store_in_one_transaction(
        self, claims: Sequence[Claim], facts: Facts, now: datetime
    ) -> None:
        async with self.engine.begin() as conn:
            store = ResourceStore(
                conn, listeners=self.listeners, clock=self.clock, cause=WriteCause.STATUS_WRITEBACK
            )
            await store_batch(
                store, claims, facts, worker=self.worker_id, rules=self.rules, now=now
            )

    async def _back_off(self, claim: Claim, error: Exception, now: datetime) -> None:
        _log.warning(
            "recompute of a course failed: %s (attempt %d)", type(error).__name__, claim.attempts
        )
        async with self.engine.begin() as conn:
            await retry_later(conn, claim, error=type(error).__name__, now=now)

    async def _release(self, claims: Sequence[Claim]) -> None:
        async with self.engine.begin() as conn:
            await release(conn, claims, worker=self.worker_id)


def _readable(found: CourseFacts | UnreadableCourse | None) -> CourseFacts | None:
    assert not isinstance(found, UnreadableCourse)  # sorted out before
    return found
