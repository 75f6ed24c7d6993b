"""SQL of webhook deliveries: fan-out, the sendable queues, outcomes, the log, retention.

A delivery row is one (endpoint, event). Rows of one endpoint and partition key (course) are
sent strictly one after the other, oldest first: only a queue whose head is due is sendable,
so a failing event holds back later events of its course and nothing else. Every worker
process delivers: a process sends a queue only while it holds that queue's advisory lock
(`lock_sendable`), so the queues are shared out and each is sent by one process at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    BindParameter,
    DateTime,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db.advisory import TWO_INTS, held_advisory_locks
from ipt_core.db.schema import (
    ipt_course,
    is_pending,
    outbox,
    webhook_delivery,
    webhook_endpoint,
)
from ipt_core.db.unnest import unnest_params
from ipt_core.events.webhooks._model import (
    Attempt,
    Delivered,
    DeliveryRecord,
    DueDelivery,
    Queue,
)

__all__ = [
    "DELIVERY_CHANNEL",
    "QUEUE_LOCKS",
    "delete_delivered",
    "deliveries_of",
    "fan_out",
    "lock_sendable",
    "queue_key",
    "queue_replay",
    "queued",
    "record_delivered",
    "record_failure",
    "redeliver",
    "unlock",
]

# The first key of every delivery queue's advisory lock (the two-int form, kept apart from the
# one-bigint keys of relay leadership and worker liveness; `ipt_core.db.advisory`).
QUEUE_LOCKS: Final = 0x57484B  # "WHK"
_QUEUE_LOCKS: Final = literal(QUEUE_LOCKS, Integer)
# Notified when deliveries are queued: every worker's delivery loop listens.
DELIVERY_CHANNEL: Final = "ipt_webhook_delivery"
_d: Final = webhook_delivery.c
_e: Final = webhook_endpoint.c
_QUEUED_COLUMNS: Final = (
    "endpoint_id",
    "event_seq",
    "event_id",
    "event_type",
    "partition_key",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_RECORD: Final = tuple(getattr(_d, name) for name in DeliveryRecord.__dataclass_fields__)


def _matching(now: Any) -> Select[Any]:
    """Pending delivery rows for outbox events and the endpoints whose filters they pass."""
    course = ipt_course.c
    stamp = now if isinstance(now, BindParameter) else literal(now, DateTime(timezone=True))
    return (
        select(
            _e.id,
            outbox.c.seq,
            outbox.c.id,
            outbox.c.type,
            outbox.c.aggregateid,
            literal("pending"),
            literal(0),
            stamp,
            stamp,
        )
        .select_from(
            outbox.join(
                webhook_endpoint,
                or_(func.cardinality(_e.event_types) == 0, outbox.c.type == any_(_e.event_types)),
            ).outerjoin(ipt_course, course.id == outbox.c.aggregateid)
        )
        .where(
            or_(_e.therapist_ref.is_(None), _e.therapist_ref == course.therapist_ref),
            or_(_e.organization_ref.is_(None), _e.organization_ref == course.organization_ref),
        )
    )


def _fan_out() -> Select[Any]:
    """Insert the deliveries and, when there are any, `NOTIFY` the delivery loops: one
    statement (the relay runs it for every batch it publishes)."""
    queued = (
        insert(webhook_delivery)
        .from_select(
            _QUEUED_COLUMNS,
            _matching(bindparam("now"))
            .where(_e.enabled, outbox.c.seq == any_(bindparam("seqs", type_=ARRAY(BigInteger))))
            .order_by(outbox.c.seq, _e.id),
        )
        .returning(_d.id)
        .cte("queued")
    )
    counted = select(func.count().label("queued")).select_from(queued).subquery("counted")
    woken = case((counted.c.queued > 0, func.pg_notify(DELIVERY_CHANNEL, "")))
    return select(counted.c.queued, woken.label("woken"))


_FAN_OUT: Final = _fan_out()


async def fan_out(conn: AsyncConnection, seqs: Sequence[int], now: datetime) -> int:
    """Queue the outbox events `seqs` for every enabled endpoint that wants them."""
    return int(await conn.scalar(_FAN_OUT, {"seqs": list(seqs), "now": now}) or 0)


async def _notified(conn: AsyncConnection, queued: int) -> int:
    """Wake the delivery loops (`NOTIFY`, sent on commit) when deliveries were queued."""
    if queued:
        await conn.execute(_NOTIFY)
    return queued


async def queue_replay(
    conn: AsyncConnection, endpoint_id: str, since: datetime, until: datetime, now: datetime
) -> int:
    """Queue again, for one endpoint, every stored event created in [since, until)."""
    rows = (
        _matching(now)
        .where(_e.id == endpoint_id, outbox.c.created_at >= since, outbox.c.created_at < until)
        .order_by(outbox.c.seq)
    )
    inserted = await conn.execute(insert(webhook_delivery).from_select(_QUEUED_COLUMNS, rows))
    return await _notified(conn, int(inserted.rowcount))


def queue_key(endpoint_id: Any, partition_key: Any) -> ColumnElement[int]:
    """The second key of a queue's advisory lock: a 31-bit hash of (endpoint, partition key).

    Non-negative, so it equals `pg_locks.objid` as a bigint. Two queues that hash alike only
    share a lock: neither is ever sent by two processes at once.
    """
    return func.hashtext(endpoint_id + " " + partition_key).op("&")(0x7FFFFFFF)


def _lock_sendable() -> Select[Any]:
    """Walk the pending rows oldest first, one index probe a step, and lock sendable heads.

    The walk is a recursive CTE: it stops as soon as `queues` candidates are found, whatever
    the planner's statistics say. Written as a plain join, the planner chose to find every
    pending head and sort them whenever `webhook_delivery` had no statistics yet (a fresh
    database, until autovacuum's first ANALYZE) or misleading ones: each claim then cost time
    in proportion to the backlog (1-2 s at 9,000 pending rows), the loop fell further behind,
    and webhook latency reached 40 s in `make bench` (bench/PROFILE.md, "Sixth round").
    A row's tests are SubPlans of its step, so no plan can turn them into a join over the
    whole table either. What the walk still costs in proportion to: the pending rows older
    than the queues it finds (a long backlog of one endpoint, e.g. one that is failing).
    """
    held = held_advisory_locks(TWO_INTS).cte("held").prefix_with("MATERIALIZED")

    def step(row: Any) -> Select[Any]:
        earlier = webhook_delivery.alias("earlier")
        key = queue_key(row.c.endpoint_id, row.c.partition_key)
        sendable = and_(
            row.c.next_attempt_at <= bindparam("now"),
            exists().where(_e.id == row.c.endpoint_id, _e.enabled),
            ~exists().where(
                earlier.c.endpoint_id == row.c.endpoint_id,
                earlier.c.partition_key == row.c.partition_key,
                is_pending(earlier.c.status),
                earlier.c.id < row.c.id,
            ),
            ~exists().where(held.c.classid == QUEUE_LOCKS, held.c.objid == key),
        )
        return select(
            row.c.id,
            row.c.endpoint_id,
            row.c.partition_key,
            key.label("key"),
            sendable.label("sendable"),
        )

    oldest = webhook_delivery.alias("oldest")
    walk = (
        step(oldest)
        .where(is_pending(oldest.c.status))
        .order_by(oldest.c.id)
        .limit(1)
        .cte("walk", recursive=True)
    )
    later = webhook_delivery.alias("later")
    following = (
        select(later.c.id, later.c.endpoint_id, later.c.partition_key, later.c.next_attempt_at)
        .where(is_pending(later.c.status), later.c.id > walk.c.id)
        .order_by(later.c.id)
        .limit(1)
        .lateral("following")
    )
    walk = walk.union_all(step(following).select_from(walk.join(following, true())))
    due = (
        select(walk.c.endpoint_id, walk.c.partition_key, walk.c.key)
        .where(walk.c.sendable)
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


# Built once: the delivery loop runs them for every round of queues (building a Core statement
# costs more CPU than running it; docs/architecture.md#events-outbox-and-relay).
_LOCK_SENDABLE: Final = _lock_sendable()
_QUEUED: Final = _queued()
_UNLOCK: Final = _unlock()
_NOTIFY: Final = select(func.pg_notify(DELIVERY_CHANNEL, ""))


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


_done = unnest_params("done", id=BigInteger, code=Integer, at=DateTime(timezone=True))
_RECORD_DELIVERED: Final = (
    update(webhook_endpoint)
    .where(
        _e.id == any_(bindparam("endpoints", type_=ARRAY(Text))),
        _e.consecutive_failures != 0,
    )
    .values(consecutive_failures=0)
    .add_cte(
        update(webhook_delivery)
        .where(_d.id == _done.c.id)
        .values(
            attempts=_d.attempts + 1,
            last_attempt_at=_done.c.at,
            last_status_code=_done.c.code,
            last_error=None,
            status="delivered",
            delivered_at=_done.c.at,
        )
        .cte("marked")
    )
)


async def record_delivered(conn: AsyncConnection, delivered: Sequence[Delivered]) -> None:
    """Mark many deliveries delivered in one statement (it needs no transaction of its own).

    The endpoints' failure counts are written only where they are not zero: every success
    locking its endpoint's row would make concurrent deliveries to one endpoint queue on it.
    """
    if delivered:
        await conn.execute(
            _RECORD_DELIVERED,
            {
                "each_id": [item.delivery_id for item in delivered],
                "each_code": [item.status_code for item in delivered],
                "each_at": [item.at for item in delivered],
                "endpoints": sorted({item.endpoint_id for item in delivered}),
            },
        )


async def record_failure(conn: AsyncConnection, attempt: Attempt, now: datetime) -> int:
    """Store a failed attempt and when to retry; return the endpoint's consecutive failures."""
    failed = (
        update(webhook_delivery)
        .where(_d.id == attempt.delivery_id)
        .values(
            attempts=_d.attempts + 1,
            last_attempt_at=now,
            last_status_code=attempt.status_code,
            last_error=attempt.error,
            next_attempt_at=attempt.next_attempt_at,
        )
        .cte("failed")
    )
    failures = await conn.scalar(
        update(webhook_endpoint)
        .where(_e.id == attempt.endpoint_id)
        .values(consecutive_failures=_e.consecutive_failures + 1)
        .returning(_e.consecutive_failures)
        .add_cte(failed)
    )
    return int(failures or 0)


async def deliveries_of(
    conn: AsyncConnection, endpoint_id: str, *, before: int | None, limit: int
) -> list[DeliveryRecord]:
    """An endpoint's deliveries, newest first, older than delivery `before` when given."""
    query = select(*_RECORD).where(_d.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(_d.id < before)
    rows = await conn.execute(query.order_by(_d.id.desc()).limit(limit))
    return [DeliveryRecord(**row._mapping) for row in rows]


async def redeliver(
    conn: AsyncConnection, endpoint_id: str, delivery_id: int, now: datetime
) -> DeliveryRecord | None:
    """Queue the event of a past delivery once more (same event id); None if not possible.

    The copy goes to the back of its course's queue, after what is pending for that course.
    """
    past = webhook_delivery.alias("past")
    stamp = literal(now, DateTime(timezone=True))
    copy = select(
        past.c.endpoint_id,
        past.c.event_seq,
        past.c.event_id,
        past.c.event_type,
        past.c.partition_key,
        literal("pending"),
        literal(0),
        stamp,
        stamp,
    ).where(
        past.c.id == delivery_id,
        past.c.endpoint_id == endpoint_id,
        exists().where(outbox.c.seq == past.c.event_seq),  # its event is still stored
    )
    row = (
        await conn.execute(
            insert(webhook_delivery).from_select(_QUEUED_COLUMNS, copy).returning(*_RECORD)
        )
    ).first()
    if row is None:
        return None
    await _notified(conn, 1)
    return DeliveryRecord(**row._mapping)


async def delete_delivered(conn: AsyncConnection, cutoff: datetime, *, chunk: int) -> int:
    """Delete up to `chunk` delivered rows created before `cutoff` (retention)."""
    old = webhook_delivery.alias("old")
    expired = (
        select(old.c.id).where(old.c.status == "delivered", old.c.created_at < cutoff).limit(chunk)
    )
    deleted = await conn.execute(delete(webhook_delivery).where(_d.id.in_(expired)))
    return int(deleted.rowcount)
