"""Recompute requests in PostgreSQL: one row per course, leased with FOR UPDATE SKIP LOCKED.

- Writers call `request_recompute` in the transaction of the write that changed a course's
  facts; requests for one course coalesce into its single row (the earliest due time wins
  and `generation` is bumped).
- Workers `claim_due` a batch in a short transaction: each row gets a lease
  (`claimed_until`) so no other worker takes it, and no API write ever waits for a
  computation to finish. A lease lasts until `claimed_until` or until its holder's liveness
  lock is gone (`WorkerLiveness`): a killed worker's courses are taken over at the next claim.
- `finish` removes the row, or re-arms it at the course's `next_transition_at` — unless a new
  request arrived meanwhile (generation changed), which makes it due again at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.backoff import backoff_ceiling_s
from ipt_core.queue._liveness import LIVE_WORKERS_SQL
from ipt_core.telemetry import current_traceparent

__all__ = ["Claim", "claim_due", "finish", "release", "request_recompute", "retry_later"]

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
    await conn.execute(
        text(
            "INSERT INTO recompute_request (course_id, due_at, generation, attempts, traceparent) "
            "SELECT id, :due_at, 1, 0, :traceparent FROM unnest(CAST(:ids AS text[])) AS id "
            "ON CONFLICT (course_id) DO UPDATE SET "
            "due_at = LEAST(recompute_request.due_at, EXCLUDED.due_at), "
            "generation = recompute_request.generation + 1, "
            "traceparent = coalesce(EXCLUDED.traceparent, recompute_request.traceparent)"
        ),
        {"ids": ids, "due_at": due_at, "traceparent": current_traceparent()},
    )


async def claim_due(
    conn: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Lease up to `limit` due requests, oldest first, that no live worker holds.

    A lease counts while it has not run out and its holder's liveness lock is held. pg_locks
    is read once per claim, not per row (measured with 100 leased rows due among 2,100: no
    difference beyond noise, ~0.5 ms server time either way).
    """
    rows = await conn.execute(
        text(
            f"WITH live AS MATERIALIZED ({LIVE_WORKERS_SQL}) "
            "UPDATE recompute_request AS r SET claimed_by = :worker, "
            "claimed_until = :until, attempts = r.attempts + 1 "
            "FROM (SELECT course_id FROM recompute_request "
            "      WHERE due_at <= :now AND (claimed_until IS NULL OR claimed_until < :now "
            "        OR NOT EXISTS (SELECT 1 FROM live WHERE "
            "          live.high = (hashtextextended(claimed_by, 0) >> 32) & 4294967295 "
            "          AND live.low = hashtextextended(claimed_by, 0) & 4294967295)) "
            "      ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED) AS due "
            "WHERE r.course_id = due.course_id "
            "RETURNING r.course_id, r.generation, r.attempts, r.traceparent"
        ),
        {"worker": worker, "now": now, "until": now + lease, "limit": limit},
    )
    return [Claim(row.course_id, row.generation, row.attempts, row.traceparent) for row in rows]


async def finish(
    conn: AsyncConnection, claim: Claim, *, next_due: datetime | None, now: datetime
) -> None:
    """Release a computed course: drop its request, or re-arm it for `next_due`."""
    await conn.execute(
        text(
            "UPDATE recompute_request SET claimed_by = NULL, claimed_until = NULL, "
            "attempts = 0, last_error = NULL, traceparent = CASE WHEN generation = :generation "
            "THEN NULL ELSE traceparent END, "
            "due_at = CASE WHEN generation = :generation THEN CAST(:next_due AS timestamptz) "
            "ELSE CAST(:now AS timestamptz) END "
            "WHERE course_id = :course_id"
        ),
        {
            "course_id": claim.course_id,
            "generation": claim.generation,
            "next_due": next_due or now,
            "now": now,
        },
    )
    if next_due is None:
        await conn.execute(
            text(
                "DELETE FROM recompute_request WHERE course_id = :course_id "
                "AND generation = :generation"
            ),
            {"course_id": claim.course_id, "generation": claim.generation},
        )


async def release(conn: AsyncConnection, claims: Iterable[Claim], *, worker: str) -> None:
    """Give back claims not computed (a stopping worker): due again at once, for any worker."""
    ids = sorted(claim.course_id for claim in claims)
    if not ids:
        return
    await conn.execute(
        text(
            "UPDATE recompute_request SET claimed_by = NULL, claimed_until = NULL, "
            "attempts = greatest(attempts - 1, 0) "
            "WHERE course_id = ANY(CAST(:ids AS text[])) AND claimed_by = :worker"
        ),
        {"ids": ids, "worker": worker},
    )


async def retry_later(conn: AsyncConnection, claim: Claim, *, error: str, now: datetime) -> None:
    """Back off a failed course exponentially; other courses are not held up."""
    # `attempts` counts the claim that just failed too: 2 s after the first failure.
    delay = timedelta(
        seconds=backoff_ceiling_s(
            claim.attempts + 1, initial_s=1.0, max_s=_MAX_BACKOFF.total_seconds()
        )
    )
    await conn.execute(
        text(
            "UPDATE recompute_request SET claimed_by = NULL, claimed_until = NULL, "
            "due_at = :due_at, last_error = :error WHERE course_id = :course_id"
        ),
        {"course_id": claim.course_id, "due_at": now + delay, "error": error},
    )
