"""The recompute loop: claim due courses, compute their status, store it, emit events.

Each claimed course is stored in its own transaction, so one failing course backs off alone
and never blocks the others. What is stored for a course, in that one transaction:
`course_status` (version bumped when a status field changed) and its history row, the status
events in the outbox, the symptom Goal's `achievementStatus` and the CarePlan's phase
extension (written through the FHIR store with the cause `WriteCause.STATUS_WRITEBACK`, so
their history shows the change and the IPT projections skip them), and the course's next
wake-up time.

The CarePlan is locked and read once, through the store, and that version is the one written
back: one way to the row, no SQL of our own on the `resource` table.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from opentelemetry import metrics, trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.events import append_events, next_sequence
from ipt_core.fhir.errors import PreconditionFailed, ResourceNotFound
from ipt_core.fhir.model import StoredResource, WriteCause
from ipt_core.fhir.store import ResourceStore, WriteListener
from ipt_core.ipt import course_phase, goal_achievement, with_course_phase, with_goal_achievement
from ipt_core.queue import Claim, WorkerLiveness, claim_due, finish, release, retry_later
from ipt_core.status import DEFAULT_RULES, CourseFacts, StatusRules, compute_status
from ipt_core.status.loader import UnreadableCourse, load_facts
from ipt_core.status.serialize import status_json
from ipt_core.telemetry import context_from_traceparent
from ipt_worker.status_events import event_count, status_events
from ipt_worker.status_history import record_history

__all__ = ["Recomputer"]

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer("ipt_worker.recompute")
_meter = metrics.get_meter("ipt_worker.recompute")
_durations = _meter.create_histogram(
    "ipt.recompute.duration", unit="s", description="Time to compute and store one course"
)
Clock = Callable[[], datetime]


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

        When `stop` is set mid-batch (SIGTERM) the courses not computed yet are released at
        once for another worker, so a shutdown never leaves them waiting for their lease.
        """
        await self.liveness.ensure()  # claims are only valid while our liveness lock is held
        now = self.clock()
        async with self.engine.begin() as conn:
            claims = await claim_due(
                conn, worker=self.worker_id, now=now, lease=self.lease, limit=self.batch_size
            )
        if not claims:
            return 0
        async with self.engine.connect() as conn:
            facts = await load_facts(conn, [claim.course_id for claim in claims])
        for done, claim in enumerate(claims):
            if stop is not None and stop.is_set():
                async with self.engine.begin() as conn:
                    await release(conn, claims[done:], worker=self.worker_id)
                break
            await self._recompute(claim, facts.get(claim.course_id), now)
        return len(claims)

    async def close(self) -> None:
        """Release the liveness lock; any lease still held is then free for other workers."""
        await self.liveness.close()

    async def _recompute(
        self, claim: Claim, facts: CourseFacts | UnreadableCourse | None, now: datetime
    ) -> None:
        # The span continues the trace of the write that asked for this recompute.
        context = context_from_traceparent(claim.traceparent)
        started = time.perf_counter()
        with _tracer.start_as_current_span("recompute course", context=context):
            await self._recompute_in_span(claim, facts, now)
        _durations.record(time.perf_counter() - started)

    async def _recompute_in_span(
        self, claim: Claim, facts: CourseFacts | UnreadableCourse | None, now: datetime
    ) -> None:
        if isinstance(facts, UnreadableCourse):
            _log.warning("a course's facts cannot be read: %s", facts.error)
            async with self.engine.begin() as conn:
                await retry_later(conn, claim, error=facts.error, now=now)
            return
        try:
            async with self.engine.begin() as conn:
                store = ResourceStore(
                    conn,
                    listeners=self.listeners,
                    clock=self.clock,
                    cause=WriteCause.STATUS_WRITEBACK,
                )
                careplan = await _lock_course(store, claim.course_id)
                if await self._still_ours(conn, claim):
                    next_due = await self._store(store, careplan, claim.course_id, facts, now)
                    await finish(conn, claim, next_due=next_due, now=now)
        except Exception as error:  # one course's failure must not stop the batch
            _log.warning(
                "recompute of a course failed: %s (attempt %d)",
                type(error).__name__,
                claim.attempts,
            )
            async with self.engine.begin() as conn:
                await retry_later(conn, claim, error=type(error).__name__, now=now)

    async def _still_ours(self, conn: AsyncConnection, claim: Claim) -> bool:
        # Holding the request row until commit: a worker whose lease ran out cannot also store.
        owner = await conn.scalar(
            text("SELECT claimed_by FROM recompute_request WHERE course_id = :id FOR UPDATE"),
            {"id": claim.course_id},
        )
        return bool(owner == self.worker_id)

    async def _store(
        self,
        store: ResourceStore,
        careplan: StoredResource | None,
        course_id: str,
        facts: CourseFacts | None,
        now: datetime,
    ) -> datetime | None:
        conn = store.conn
        if facts is None:  # no longer an IPT course (deleted, entered-in-error)
            await conn.execute(
                text("DELETE FROM course_status WHERE course_id = :id"), {"id": course_id}
            )
            return None
        status = compute_status(facts, now, self.rules)
        current = status_json(status)
        previous = await conn.execute(
            text(
                "SELECT version, status, next_transition_at FROM course_status "
                "WHERE course_id = :id FOR UPDATE"
            ),
            {"id": course_id},
        )
        row = previous.first()
        old: dict[str, Any] | None = row.status if row is not None else None
        if old != current:
            await self._save_change(conn, course_id, old, current, row, now, status)
            if careplan is not None and not careplan.deleted:
                await _write_back(store, careplan, current)
        else:
            await conn.execute(
                text(
                    "UPDATE course_status SET computed_at = :now, next_transition_at = :next "
                    "WHERE course_id = :id"
                ),
                {"id": course_id, "now": now, "next": status.next_transition_at},
            )
        return status.next_transition_at

    async def _save_change(
        self,
        conn: AsyncConnection,
        course_id: str,
        old: dict[str, Any] | None,
        current: dict[str, Any],
        row: Any,
        now: datetime,
        status: Any,
    ) -> None:
        version = (row.version if row is not None else 0) + 1
        await conn.execute(
            text(
                "INSERT INTO course_status (course_id, version, computed_at, status, phase, "
                "engagement, next_transition_at) VALUES (:id, :version, :now, "
                "CAST(:status AS jsonb), :phase, :engagement, :next) "
                "ON CONFLICT (course_id) DO UPDATE SET version = EXCLUDED.version, "
                "computed_at = EXCLUDED.computed_at, status = EXCLUDED.status, "
                "phase = EXCLUDED.phase, engagement = EXCLUDED.engagement, "
                "next_transition_at = EXCLUDED.next_transition_at"
            ),
            {
                "id": course_id,
                "version": version,
                "now": now,
                "status": orjson.dumps(current).decode(),
                "phase": current["phase"],
                "engagement": current["engagement"],
                "next": status.next_transition_at,
            },
        )
        await record_history(conn, course_id, version, current, row, now)
        first = await next_sequence(conn, course_id, event_count(old, current))
        events = status_events(
            course_id, old, current, first_sequence=first, now=now, version=version
        )
        await append_events(conn, "CarePlan", events, now)


async def _lock_course(store: ResourceStore, course_id: str) -> StoredResource | None:
    """Lock the course's CarePlan row and return it (deleted or not; None if never written).

    Lock order matches every writer's: the CarePlan first, then its recompute request (a domain
    write locks the CarePlan and then requests a recompute; the other order could deadlock
    with it). The locked version is the one the write-back starts from.
    """
    try:
        return await store.read_any("CarePlan", course_id, for_update=True)
    except ResourceNotFound:
        return None


async def _write_back(
    store: ResourceStore, careplan_row: StoredResource, current: dict[str, Any]
) -> None:
    """Keep the CarePlan's phase extension and the symptom Goal's achievement current."""
    course_id = careplan_row.id
    careplan = orjson.loads(careplan_row.content or "{}")
    if course_phase(careplan) != current["phase"]:
        await _update_unless_changed(
            store,
            "CarePlan",
            course_id,
            with_course_phase(careplan, current["phase"]),
            careplan_row.version_id,
        )
    goal_id = await store.conn.scalar(
        text("SELECT symptom_goal_id FROM ipt_course WHERE id = :id"), {"id": course_id}
    )
    if goal_id is None:
        return
    goal_row = await store.read_any("Goal", goal_id)
    if goal_row.deleted or goal_row.content is None:
        return
    goal = orjson.loads(goal_row.content)
    if goal_achievement(goal) != current["goal_status"]:
        await _update_unless_changed(
            store,
            "Goal",
            goal_id,
            with_goal_achievement(goal, current["goal_status"]),
            goal_row.version_id,
        )


async def _update_unless_changed(
    store: ResourceStore, resource_type: str, id_: str, body: dict[str, Any], version: int
) -> None:
    # If someone changed the resource since we read it, their write re-queues the course.
    # The version check fails before anything is written, so no savepoint is needed.
    try:
        await store.update(resource_type, id_, body, if_match=version)
    except PreconditionFailed:
        _log.info("write-back skipped: %s changed meanwhile", resource_type)
