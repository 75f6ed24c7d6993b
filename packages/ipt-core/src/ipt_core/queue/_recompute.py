"""Recompute requests in PostgreSQL: one row per course, leased with FOR UPDATE SKIP LOCKED.

The repository of the `recompute_request` table (SQLAlchemy Core, docs/architecture.md):

- Writers call `request_recompute` in the transaction of the write that changed a course's
  facts; requests for one course coalesce into its single row (the earliest due time wins
  and `generation` is bumped).
- Workers `claim_due` a batch in a short transaction: each row gets a lease
  (`claimed_until`) so no other worker takes it, and no API write ever waits for a
  computation to finish. A lease lasts until `claimed_until` or until its holder's liveness
  lock is gone (`WorkerLiveness`): a killed worker's courses are taken over at the next claim.
- `lock_owned` re-checks under row locks which claims are still ours before storing.
- `finish_many` removes the rows, or re-arms them at each course's `next_transition_at` —
  unless a new request arrived meanwhile (generation changed), which makes it due again at
  once. `retry_many` backs failed courses off; `release` gives back uncomputed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Text,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.backoff import backoff_ceiling_s
from ipt_core.db.schema import recompute_request as rr
from ipt_core.db.unnest import INSTANT, among, unnest_rows
from ipt_core.queue._liveness import live_workers, worker_key
from ipt_core.telemetry import current_traceparent

_MAX_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    """A leased recompute request."""

    course_id: str
    generation: int
    attempts: int
    traceparent: str | None = None  # the trace of the latest write that asked


async def request_recompute(
    conn: AsyncConnection, course_ids: Iterable[str], due_at: datetime
) -> None:
    """Ask for the courses to be recomputed at `due_at` (or earlier, if already asked)."""
    ids = sorted(set(course_ids))  # a fixed order: concurrent writers never deadlock
    if not ids:
        return
    asked = unnest_rows("asked", course_id=(Text(), ids))
    statement = insert(rr).from_select(
        ["course_id", "due_at", "generation", "attempts", "traceparent"],
        select(
            asked.c.course_id,
            cast(literal(due_at), INSTANT),
            literal(1),
            literal(0),
            cast(literal(current_traceparent()), Text),
        ),
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[rr.c.course_id],
            set_={
                "due_at": func.least(rr.c.due_at, statement.excluded.due_at),
                "generation": rr.c.generation + 1,
                "traceparent": func.coalesce(statement.excluded.traceparent, rr.c.traceparent),
            },
        )
    )


async def claim_due(
    conn: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Lease up to `limit` due requests, oldest first, that no live worker holds.

    A lease counts while it has not run out and its holder's liveness lock is held. pg_locks
    is read once per claim, not per row (measured with 100 leased rows due among 2,100: no
    difference beyond noise, ~0.5 ms server time either way).
    """
    live = live_workers().cte("live").prefix_with("MATERIALIZED")
    key = worker_key(rr.c.claimed_by)
    holder_alive = exists().where(
        live.c.classid == key.op(">>")(32).op("&")(4294967295),
        live.c.objid == key.op("&")(4294967295),
    )
    due = (
        select(rr.c.course_id)
        .where(
            rr.c.due_at <= now,
            or_(rr.c.claimed_until.is_(None), rr.c.claimed_until < now, ~holder_alive),
        )
        .order_by(rr.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    rows = await conn.execute(
        update(rr)
        .where(rr.c.course_id == due.c.course_id)
        .values(claimed_by=worker, claimed_until=now + lease, attempts=rr.c.attempts + 1)
        .returning(rr.c.course_id, rr.c.generation, rr.c.attempts, rr.c.traceparent)
    )
    return [Claim(row.course_id, row.generation, row.attempts, row.traceparent) for row in rows]


async def lock_owned(conn: AsyncConnection, course_ids: Sequence[str], *, worker: str) -> set[str]:
    """Lock the requests of `course_ids` still claimed by `worker`; return their course ids.

    Held until commit, so a worker whose lease ran out cannot also store. Locked in course id
    order, like `request_recompute`, so two batches never deadlock on these rows.
    """
    if not course_ids:
        return set()
    rows = await conn.scalars(
        select(rr.c.course_id)
        .where(among(rr.c.course_id, course_ids, Text()), rr.c.claimed_by == worker)
        .order_by(rr.c.course_id)
        .with_for_update()
    )
    return set(rows)


async def finish(
    conn: AsyncConnection, claim: Claim, *, next_due: datetime | None, now: datetime
) -> None:
    """Release a computed course: drop its request, or re-arm it for `next_due`."""
    await finish_many(conn, [(claim, next_due)], now=now)


async def finish_many(
    conn: AsyncConnection,
    done: Sequence[tuple[Claim, datetime | None]],
    *,
    now: datetime,
) -> None:
    """Release computed courses: drop each request, or re-arm it at its next due time.

    A request whose generation moved on (a write asked again meanwhile) is due again at once.
    """
    if not done:
        return
    rows = unnest_rows(
        "done",
        course_id=(Text(), [claim.course_id for claim, _ in done]),
        generation=(BigInteger(), [claim.generation for claim, _ in done]),
        next_due=(INSTANT, [next_due for _, next_due in done]),
    )
    same = rr.c.generation == rows.c.generation
    await conn.execute(
        update(rr)
        .where(rr.c.course_id == rows.c.course_id)
        .values(
            claimed_by=None,
            claimed_until=None,
            attempts=0,
            last_error=None,
            traceparent=case((same, None), else_=rr.c.traceparent),
            due_at=case((same, func.coalesce(rows.c.next_due, now)), else_=now),
        )
    )
    if any(next_due is None for _, next_due in done):
        await conn.execute(
            delete(rr).where(rr.c.course_id == rows.c.course_id, same, rows.c.next_due.is_(None))
        )


async def release(conn: AsyncConnection, claims: Iterable[Claim], *, worker: str) -> None:
    """Give back claims not computed (a stopping worker): due again at once, for any worker."""
    ids = sorted(claim.course_id for claim in claims)
    if not ids:
        return
    await conn.execute(
        update(rr)
        .where(among(rr.c.course_id, ids, Text()), rr.c.claimed_by == worker)
        .values(
            claimed_by=None,
            claimed_until=None,
            attempts=func.greatest(rr.c.attempts - 1, 0),
        )
    )


async def retry_later(conn: AsyncConnection, claim: Claim, *, error: str, now: datetime) -> None:
    """Back off a failed course exponentially; other courses are not held up."""
    await retry_many(conn, [(claim, error)], now=now)


async def retry_many(
    conn: AsyncConnection, failures: Sequence[tuple[Claim, str]], *, now: datetime
) -> None:
    """Back failed courses off exponentially, each by its own attempts; `error` is a type name."""
    if not failures:
        return
    failed = sorted(failures, key=lambda failure: failure[0].course_id)
    rows = unnest_rows(
        "failed",
        course_id=(Text(), [claim.course_id for claim, _ in failed]),
        due_at=(INSTANT, [now + _backoff(claim) for claim, _ in failed]),
        error=(Text(), [error for _, error in failed]),
    )
    await conn.execute(
        update(rr)
        .where(rr.c.course_id == rows.c.course_id)
        .values(claimed_by=None, claimed_until=None, due_at=rows.c.due_at, last_error=rows.c.error)
    )


async def queue_depth(conn: AsyncConnection, *, now: datetime) -> tuple[int, int]:
    """How many courses have a request, and how many of those are due at `now`."""
    row = (
        await conn.execute(
            select(func.count(), func.count().filter(rr.c.due_at <= now)).select_from(rr)
        )
    ).one()
    return int(row[0]), int(row[1])


def _backoff(claim: Claim) -> timedelta:
    # `attempts` counts the claim that just failed too: 2 s after the first failure.
    return timedelta(
        seconds=backoff_ceiling_s(
            claim.attempts + 1, initial_s=1.0, max_s=_MAX_BACKOFF.total_seconds()
        )
    )
