"""SQL of the delivery queues: their table, which worker process sends which, and their rows.

A queue is the deliveries of one endpoint and partition key (course), sent strictly one after
the other, oldest first: only a queue whose head is due is sendable, so a failing event holds
back later events of its course and nothing else. `webhook_queue` holds one row per queue
with deliveries pending: how many, and when its head is due (NULL while its endpoint is
disabled). Claims read that table, never the deliveries, so no backlog (an endpoint failing
for hours, or disabled with thousands pending) makes a claim slower. Every worker process
delivers: a process sends a queue only while it holds that queue's session advisory lock
(`lock_sendable`), so the queues are shared out and each is sent by one process at a time.

The table is kept in the statements that change what it counts (docs/architecture.md,
"Events: outbox and relay"): queueing (`enqueued`, with the fan-out, replay and redelivery),
delivering (`advanced`; a queue emptied is deleted), a failure (`hold`), disabling and
enabling (`park`, `make_due`); retention rebuilds it from the deliveries (`reconcile`).
Counts change by increments under the row's lock, so concurrent statements never lose one.
Every statement that locks queue rows locks them in key order, after any endpoint row it
locks, so two of them never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy.exc
from sqlalchemy import (
    CTE,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.advisory import TWO_INTS, held_advisory_locks
from ipt_core.db.schema import (
    is_pending,
    outbox,
    webhook_delivery,
    webhook_endpoint,
    webhook_queue,
)
from ipt_core.db.unnest import unnest_params
from ipt_core.events.webhooks._model import DueDelivery, Queue

__all__ = [
    "QUEUE_LOCKS",
    "advanced",
    "drop_empty",
    "enqueued",
    "hold",
    "lock_sendable",
    "make_due",
    "park",
    "queue_key",
    "queued",
    "reconcile",
    "unlock",
]

# The first key of every delivery queue's advisory lock (the two-int form, kept apart from the
# one-bigint keys of relay leadership and worker liveness; `ipt_core.db.advisory`).
QUEUE_LOCKS: Final = 0x57484B  # "WHK"
_QUEUE_LOCKS: Final = literal(QUEUE_LOCKS, Integer)
_d: Final = webhook_delivery.c
_e: Final = webhook_endpoint.c
_q: Final = webhook_queue.c


def queue_key(endpoint_id: Any, partition_key: Any) -> ColumnElement[int]:
    """The second key of a queue's advisory lock: a 31-bit hash of (endpoint, partition key).

    Non-negative, so it equals `pg_locks.objid` as a bigint. Two queues that hash alike only
    share a lock: neither is ever sent by two processes at once.
    """
    return func.hashtext(endpoint_id + " " + partition_key).op("&")(0x7FFFFFFF)


def _lock_sendable() -> Select[Any]:
    """The due queues, longest due first, that no session holds: lock up to `queues` of them.

    One index range scan of `ix_webhook_queue_due`: it reads the due queues in order and stops
    once it has enough, passing over only those some process holds (at most what the
    processes have claimed). Queues not due (held back by a failure, or their endpoint
    disabled) are not in the range at all.
    """
    held = held_advisory_locks(TWO_INTS).cte("held").prefix_with("MATERIALIZED")
    key = queue_key(_q.endpoint_id, _q.partition_key)
    due = (
        select(_q.endpoint_id, _q.partition_key, key.label("key"))
        .where(
            _q.due_at <= bindparam("now"),
            # Only a race leaves a disabled endpoint's queue due (`reconcile` parks it again).
            exists().where(_e.id == _q.endpoint_id, _e.enabled),
            ~exists().where(held.c.classid == QUEUE_LOCKS, held.c.objid == key),
        )
        .order_by(_q.due_at)
        .limit(bindparam("queues"))
        .cte("due")
        .prefix_with("MATERIALIZED")  # so each candidate is tried once, and only those
    )
    return select(due.c.endpoint_id, due.c.partition_key).where(
        func.pg_try_advisory_lock(_QUEUE_LOCKS, due.c.key)
    )


def _queued() -> Select[Any]:
    owned = unnest_params("owned", endpoint_id=Text, partition_key=Text)
    queue = (
        select(_d.id, _d.attempts, _d.next_attempt_at, _d.event_seq)
        .where(
            _d.endpoint_id == owned.c.endpoint_id,
            _d.partition_key == owned.c.partition_key,
            is_pending(_d.status),
        )
        .order_by(_d.id)
        .limit(bindparam("per_queue"))
        .lateral("queue")
    )
    return (
        select(
            queue.c.id,
            owned.c.endpoint_id,
            owned.c.partition_key,
            _e.url,
            _e.secret,
            queue.c.attempts,
            queue.c.next_attempt_at,
            outbox.c.payload.label("envelope"),
        )
        .select_from(
            owned.join(queue, true())
            .join(webhook_endpoint, and_(_e.id == owned.c.endpoint_id, _e.enabled))
            .join(outbox, outbox.c.seq == queue.c.event_seq)
        )
        .order_by(queue.c.id)
    )


def _unlock() -> Select[Any]:
    released = unnest_params("released", endpoint_id=Text, partition_key=Text)
    key = queue_key(released.c.endpoint_id, released.c.partition_key)
    return select(func.pg_advisory_unlock(_QUEUE_LOCKS, key)).select_from(released)


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


def enqueued(rows: CTE, now: ColumnElement[datetime]) -> CTE:
    """Count the deliveries an INSERT returned (`rows`: endpoint_id, partition_key) into
    their queues, as a CTE of the same statement.

    A queue that had none pending becomes due `now` when its endpoint is enabled; one held
    back by a failure, or parked, stays so. Rows are inserted in key order, which is the
    order `ON CONFLICT` locks the existing ones in.
    """
    counted = (
        select(rows.c.endpoint_id, rows.c.partition_key, func.count().label("pending"))
        .group_by(rows.c.endpoint_id, rows.c.partition_key)
        .subquery("counted")
    )
    added = insert(webhook_queue).from_select(
        ["endpoint_id", "partition_key", "pending", "due_at"],
        select(
            counted.c.endpoint_id,
            counted.c.partition_key,
            counted.c.pending,
            case((_e.enabled, now)),
        )
        .join_from(counted, webhook_endpoint, _e.id == counted.c.endpoint_id)
        .order_by(counted.c.endpoint_id, counted.c.partition_key),
    )
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
        await conn.execute(_LOCK_LISTED, _queue_params(queues))
        await conn.execute(_DELETE_EMPTY, _queue_params(queues))


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
    added = insert(webhook_queue).from_select(
        ["endpoint_id", "partition_key", "pending", "due_at"],
        select(
            actual.c.endpoint_id,
            actual.c.partition_key,
            actual.c.pending,
            case((_e.enabled, actual.c.head_due)),
        )
        .join_from(actual, webhook_endpoint, _e.id == actual.c.endpoint_id)
        .order_by(actual.c.endpoint_id, actual.c.partition_key),
    )
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


# Built once: the delivery loop runs them for every round of queues (building a Core statement
# costs more CPU than running it; docs/architecture.md#events-outbox-and-relay).
_LOCK_SENDABLE: Final = _lock_sendable()
_QUEUED: Final = _queued()
_UNLOCK: Final = _unlock()


async def lock_sendable(conn: AsyncConnection, now: datetime, *, queues: int) -> list[Queue]:
    """Lock up to `queues` of the oldest queues whose head is due and no session holds.

    A queue is an (endpoint, partition key) of an enabled endpoint. Each lock is a session
    advisory lock on `conn`: held until `unlock` or until the session ends (the process died,
    the connection dropped), so no two worker processes send one queue at a time. Read the
    locked queues' rows afterwards (`queued`), in a statement of their own: this one's snapshot
    is older than its locks, and may show rows another process has delivered meanwhile.
    """
    rows = await conn.execute(_LOCK_SENDABLE, {"now": now, "queues": queues})
    return [(row.endpoint_id, row.partition_key) for row in rows]


async def queued(
    conn: AsyncConnection, queues: Sequence[Queue], *, per_queue: int
) -> list[DueDelivery]:
    """Up to `per_queue` pending rows of each of `queues` (enabled endpoints only), by id."""
    if not queues:
        return []
    rows = await conn.execute(_QUEUED, {"per_queue": per_queue, **_queue_params(queues)})
    return [DueDelivery(**row._mapping) for row in rows]


async def unlock(conn: AsyncConnection, queues: Sequence[Queue]) -> None:
    """Release the locks `lock_sendable` took on `conn` for `queues` (once per time taken)."""
    if queues:
        await conn.execute(_UNLOCK, _queue_params(queues))


def _queue_params(queues: Sequence[Queue]) -> dict[str, list[str]]:
    return {
        "each_endpoint_id": [endpoint for endpoint, _ in queues],
        "each_partition_key": [key for _, key in queues],
    }
