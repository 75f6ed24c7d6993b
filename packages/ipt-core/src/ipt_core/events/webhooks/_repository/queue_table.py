"""SQL that keeps the queue table (`webhook_queue`) in step with the deliveries.

One row per delivery queue (endpoint, partition key) with deliveries pending: how many, and
when its head is due (NULL while its endpoint is disabled). The claims read it (`queues`).
It is kept in the statements that change what it counts (docs/architecture.md, "Events:
outbox and relay"): queueing (`enqueued`, with the fan-out, replay and redelivery),
delivering (`advanced`; a queue emptied is deleted), a failure (`hold`), disabling and
enabling (`park`, `make_due`); a claim drops a queue it found empty (`drop_empty`), and
retention rebuilds the table from the deliveries (`reconcile`). Counts change by increments
under the row's lock, so concurrent statements never lose one. Every statement that locks
queue rows locks them in key order, after any endpoint row it locks, so two of them never
deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy.exc
from sqlalchemy import (
    CTE,
    Text,
    and_,
    case,
    delete,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import Insert, aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.schema import is_pending, webhook_delivery, webhook_endpoint, webhook_queue
from ipt_core.db.unnest import unnest_params
from ipt_core.events.webhooks._model import Queue
from ipt_core.events.webhooks._repository.queues import queue_params

__all__ = [
    "advanced",
    "drop_empty",
    "enqueued",
    "hold",
    "make_due",
    "park",
    "reconcile",
]

_d: Final = webhook_delivery.c
_e: Final = webhook_endpoint.c
_q: Final = webhook_queue.c


def _in_key_order(where: ColumnElement[bool], name: str) -> CTE:
    """The queues matching `where`, their rows locked in key order (no deadlock between two
    statements that lock several)."""
    return (
        select(_q.endpoint_id, _q.partition_key)
        .where(where)
        .order_by(_q.endpoint_id, _q.partition_key)
        .with_for_update(of=webhook_queue)
        .cte(name)
    )


def _where_in(locked: CTE) -> ColumnElement[bool]:
    return and_(_q.endpoint_id == locked.c.endpoint_id, _q.partition_key == locked.c.partition_key)


def _insert_queues(source: Any, pending: Any, due: Any) -> Insert:
    """INSERT the queues of `source` (endpoint_id, partition_key) with `pending` deliveries,
    due `due` if their endpoint is enabled; in key order, the order `ON CONFLICT` then locks
    the existing rows in."""
    return insert(webhook_queue).from_select(
        ["endpoint_id", "partition_key", "pending", "due_at"],
        select(source.c.endpoint_id, source.c.partition_key, pending, case((_e.enabled, due)))
        .join_from(source, webhook_endpoint, _e.id == source.c.endpoint_id)
        .order_by(source.c.endpoint_id, source.c.partition_key),
    )


def enqueued(rows: CTE, now: ColumnElement[datetime]) -> CTE:
    """Count the deliveries an INSERT returned (`rows`: endpoint_id, partition_key) into
    their queues, as a CTE of the same statement.

    A queue that had none pending becomes due `now` when its endpoint is enabled; one held
    back by a failure, or parked, stays so.
    """
    counted = (
        select(rows.c.endpoint_id, rows.c.partition_key, func.count().label("pending"))
        .group_by(rows.c.endpoint_id, rows.c.partition_key)
        .subquery("counted")
    )
    added = _insert_queues(counted, counted.c.pending, now)
    return (
        added.on_conflict_do_update(
            index_elements=[_q.endpoint_id, _q.partition_key],
            set_={
                "pending": _q.pending + added.excluded.pending,
                "due_at": func.coalesce(_q.due_at, added.excluded.due_at),
            },
        )
        .returning(_q.pending)
        .cte("enqueued")
    )


def advanced(marked: CTE) -> tuple[CTE, CTE]:
    """Take the deliveries an UPDATE marked delivered (`marked`: endpoint_id, partition_key,
    at) off their queues: CTEs of the same statement.

    A queue left with none pending is deleted (a fan-out into it meanwhile waits for the
    row's lock, then inserts it afresh). One with more goes behind those due before its last
    delivery (round robin, so a busy course cannot starve the others). The rows are locked
    first, in key order, and their counts read as locked: the latest ones.
    """
    sent = (
        select(
            marked.c.endpoint_id,
            marked.c.partition_key,
            func.count().label("sent"),
            func.max(marked.c.at).label("at"),
        )
        .group_by(marked.c.endpoint_id, marked.c.partition_key)
        .cte("sent")
    )
    acked = (
        select(_q.endpoint_id, _q.partition_key, _q.pending, sent.c.sent, sent.c.at)
        .join_from(
            sent,
            webhook_queue,
            and_(_q.endpoint_id == sent.c.endpoint_id, _q.partition_key == sent.c.partition_key),
        )
        .order_by(_q.endpoint_id, _q.partition_key)
        .with_for_update(of=webhook_queue)
        .cte("acked")
    )
    left = acked.c.pending - acked.c.sent
    emptied = delete(webhook_queue).where(_where_in(acked), left <= 0).cte("emptied")
    advanced = (
        update(webhook_queue)
        .where(_where_in(acked), left > 0)
        .values(
            pending=left,
            due_at=case((_q.due_at.is_not(None), func.greatest(_q.due_at, acked.c.at))),
        )
        .cte("advanced")
    )
    return emptied, advanced


async def hold(conn: AsyncConnection, queue: Queue, until: datetime) -> None:
    """Hold `queue` back until `until` (its head failed); a parked queue stays parked."""
    endpoint_id, partition_key = queue
    await conn.execute(
        update(webhook_queue)
        .where(
            _q.endpoint_id == endpoint_id,
            _q.partition_key == partition_key,
            _q.due_at.is_not(None),
        )
        .values(due_at=until)
    )


async def park(conn: AsyncConnection, endpoint_id: str) -> None:
    """Take every queue of a disabled endpoint out of the claims (after locking its row)."""
    locked = _in_key_order(and_(_q.endpoint_id == endpoint_id, _q.due_at.is_not(None)), "parked")
    await conn.execute(update(webhook_queue).where(_where_in(locked)).values(due_at=None))


async def make_due(conn: AsyncConnection, endpoint_id: str, now: datetime) -> None:
    """Make every queue of an enabled endpoint due `now`."""
    locked = _in_key_order(_q.endpoint_id == endpoint_id, "woken")
    await conn.execute(update(webhook_queue).where(_where_in(locked)).values(due_at=now))


def _listed_queues() -> tuple[Any, Any]:
    listed = unnest_params("listed", endpoint_id=Text, partition_key=Text)
    keys = select(listed.c.endpoint_id, listed.c.partition_key)
    lock = (
        select(_q.endpoint_id)
        .where(tuple_(_q.endpoint_id, _q.partition_key).in_(keys))
        .order_by(_q.endpoint_id, _q.partition_key)
        .with_for_update()
    )
    empty = delete(webhook_queue).where(
        tuple_(_q.endpoint_id, _q.partition_key).in_(keys),
        ~exists().where(
            _d.endpoint_id == _q.endpoint_id,
            _d.partition_key == _q.partition_key,
            is_pending(_d.status),
        ),
    )
    return lock, empty


_LOCK_LISTED, _DELETE_EMPTY = _listed_queues()


async def drop_empty(conn: AsyncConnection, queues: Sequence[Queue]) -> None:
    """Delete the rows of `queues` that have no delivery pending, in `conn`'s transaction.

    For queues a claim locked and found nothing in: their count was too high, as workers of a
    version before the table leave it during a rolling upgrade. Left as they are they would be
    claimed again at every claim, ahead of the others, until retention's rebuild. The rows are
    locked first (key order) and the deliveries read in a second statement, whose snapshot is
    younger than the locks: a fan-out into one of them either committed before (and is seen)
    or waits, then inserts the row afresh.
    """
    if queues:
        await conn.execute(_LOCK_LISTED, queue_params(queues))
        await conn.execute(_DELETE_EMPTY, queue_params(queues))


# Every queue as its pending deliveries say it is: how many, and its head's next attempt.
_ACTUAL: Final = (
    select(
        _d.endpoint_id,
        _d.partition_key,
        func.count().label("pending"),
        func.array_agg(aggregate_order_by(_d.next_attempt_at, _d.id))[1].label("head_due"),
    )
    .where(is_pending(_d.status))
    .group_by(_d.endpoint_id, _d.partition_key)
    .cte("actual")
)


def _reconcile() -> Any:
    """Rebuild the queues from the deliveries: missing ones added, counts put right, ones
    with nothing pending deleted, due times reset where they are wrong (the head's next
    attempt when the endpoint is enabled, none when it is not). A queue already right keeps
    its row and due time (a retry's hold, its place in the round robin)."""
    actual = _ACTUAL
    gone = (
        delete(webhook_queue)
        .where(
            ~exists().where(
                actual.c.endpoint_id == _q.endpoint_id,
                actual.c.partition_key == _q.partition_key,
            )
        )
        .cte("gone")
    )
    added = _insert_queues(actual, actual.c.pending, actual.c.head_due)
    right = and_(
        _q.pending == added.excluded.pending,
        _q.due_at.is_(None) == added.excluded.due_at.is_(None),
    )
    return added.on_conflict_do_update(
        index_elements=[_q.endpoint_id, _q.partition_key],
        set_={
            "pending": added.excluded.pending,
            "due_at": case((right, _q.due_at), else_=added.excluded.due_at),
        },
        where=~right,
    ).add_cte(gone)


_RECONCILE: Final = _reconcile()
# EXCLUSIVE: plain reads (the claims) go on; every statement that would change a queue, or
# lock one to change it (`FOR UPDATE`), waits until the rebuild commits.
_LOCK_QUEUES: Final = text("LOCK TABLE webhook_queue IN EXCLUSIVE MODE")
_LOCK_TIMEOUT: Final = text("SET LOCAL lock_timeout = '2s'")
_LOCK_NOT_AVAILABLE: Final = "55P03"


async def reconcile(conn: AsyncConnection) -> bool:
    """Make the queue table match the deliveries, in `conn`'s transaction; False when the
    table could not be locked within 2 s (retention tries again at its next pass).

    What can leave it wrong: a race between a fan-out and a disable (the fan-out read the
    endpoint as enabled), or a replay and an enable; and, during a rolling upgrade, processes
    of a version before the table (migration 0007) queueing and delivering without it. The
    table is locked against every statement that changes it while the deliveries are read:
    each of those changes the deliveries first and the table after, in one transaction, so a
    change the read missed has not touched the table yet, and applies its increment to the
    rebuilt count. Brief: one read of the pending deliveries, at each retention pass.
    """
    await conn.execute(_LOCK_TIMEOUT)
    try:
        async with conn.begin_nested():
            await conn.execute(_LOCK_QUEUES)
    except sqlalchemy.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        return False
    await conn.execute(_RECONCILE)
    return True
