"""Store the statuses of a batch of courses in one transaction, with set-based statements.

What one call does, in this order (docs/architecture.md, "Status engine"):

1. lock the batch's CarePlans (course id order), then its recompute requests, keeping only
   the claims still ours — the lock order every writer uses: CarePlan first, then request;
2. lock the stored statuses and compute each course's status in Python (each in a span that
   continues the trace of the write that asked for it, when this process records spans);
3. store: removed courses' statuses deleted, new versions upserted with their history rows,
   unchanged ones touched (computed_at, next_transition_at) — one statement each;
4. reserve each course's event sequence numbers (one statement) and append every status
   event to the outbox (one statement), in the per-course order `status_events` gives;
5. write back phase and Goal achievement through the resource store, after the status
   events, so a course's sequence orders a phase write-back after the change that caused it;
6. finish the claims: re-armed at each course's next transition, or dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace

from ipt_core.events import append_sequenced
from ipt_core.fhir.model import StoredResource, VersionedWrite
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt.projections import repository as projections
from ipt_core.queue import Claim, finish_many, lock_owned
from ipt_core.status import CourseFacts, StatusRules, compute_status
from ipt_core.status.repository import (
    StatusWrite,
    StoredStatus,
    delete_statuses,
    lock_statuses,
    save_statuses,
    touch_statuses,
)
from ipt_core.status.serialize import status_json
from ipt_core.telemetry import context_from_traceparent, current_traceparent, spans_recorded
from ipt_worker.status_events import status_events
from ipt_worker.status_history import change_cause
from ipt_worker.write_backs import derived_writes, write_backs

__all__ = ["store_batch"]

_tracer = trace.get_tracer("ipt_worker.recompute")


@dataclass(frozen=True)
class _Change:
    """A course whose status changed: what was stored before, what is stored now."""

    course_id: str
    previous: StoredStatus | None
    write: StatusWrite
    traceparent: str | None


async def store_batch(
    store: ResourceStore,
    claims: Sequence[Claim],
    facts: Mapping[str, CourseFacts | None],
    *,
    worker: str,
    rules: StatusRules,
    now: datetime,
) -> None:
    """Compute and store `claims` in the store's transaction; claims no longer ours are left.

    `facts` holds every claim's facts; None for a course that is no longer an IPT course
    (deleted, entered-in-error): its stored status is removed and its request dropped.
    """
    conn = store.conn
    ids = sorted(claim.course_id for claim in claims)
    # The lock order of every writer: the CarePlans first (in id order), then the requests.
    careplans = await store.read_many([("CarePlan", i) for i in ids], for_update=True)
    owned = await lock_owned(conn, ids, worker=worker)
    mine = sorted((c for c in claims if c.course_id in owned), key=lambda c: c.course_id)
    stored = await lock_statuses(
        conn, [c.course_id for c in mine if facts[c.course_id] is not None]
    )
    changes: list[_Change] = []
    unchanged: dict[str, datetime | None] = {}
    done: list[tuple[Claim, datetime | None]] = []
    traced = spans_recorded()
    for claim in mine:
        course_facts = facts[claim.course_id]
        if course_facts is None:
            done.append((claim, None))
            continue
        # Without a provider a no-op span would only hand back the causing write's traceparent.
        with (
            _tracer.start_as_current_span(
                "recompute course", context=context_from_traceparent(claim.traceparent)
            )
            if traced
            else nullcontext()
        ):
            status = compute_status(course_facts, now, rules)
            traceparent = current_traceparent() if traced else claim.traceparent
        current = status_json(status)
        previous = stored.get(claim.course_id)
        if previous is not None and previous.status == current:
            unchanged[claim.course_id] = status.next_transition_at
        else:
            version = (previous.version if previous is not None else 0) + 1
            write = StatusWrite(
                claim.course_id,
                version,
                current,
                status.next_transition_at,
                change_cause(previous, now),
            )
            changes.append(_Change(claim.course_id, previous, write, traceparent))
        done.append((claim, status.next_transition_at))
    await delete_statuses(
        conn, [claim.course_id for claim, _ in done if facts[claim.course_id] is None]
    )
    await save_statuses(conn, [change.write for change in changes], now=now)
    await touch_statuses(conn, unchanged, now=now)
    await append_sequenced(conn, [("CarePlan", event) for event in _events(changes, now)], now)
    await write_backs(store, await _write_backs(store, changes, careplans))
    await finish_many(conn, done, now=now)


def _events(changes: Sequence[_Change], now: datetime) -> list[dict[str, Any]]:
    """The changes' events, in order; `append_sequenced` numbers them per course."""

    def old(change: _Change) -> dict[str, Any] | None:
        return change.previous.status if change.previous is not None else None

    return [
        event
        for change in changes
        for event in status_events(
            change.course_id,
            old(change),
            change.write.status,
            first_sequence=0,  # numbered by `append_sequenced`, in this transaction
            now=now,
            version=change.write.version,
            traceparent=change.traceparent,
        )
    ]


async def _write_backs(
    store: ResourceStore,
    changes: Sequence[_Change],
    careplans: Mapping[tuple[str, str], StoredResource],
) -> list[VersionedWrite]:
    live = {
        c.course_id: careplan
        for c in changes
        if (careplan := careplans.get(("CarePlan", c.course_id))) is not None
        and not careplan.deleted
    }
    goal_of = await projections.symptom_goal_ids(store.conn, live)
    goals = await store.read_many([("Goal", goal_id) for goal_id in goal_of.values()])
    return [
        write
        for change in changes
        if change.course_id in live
        for write in derived_writes(
            live[change.course_id],
            goals.get(("Goal", goal_of.get(change.course_id, ""))),
            change.write.status,
        )
    ]
