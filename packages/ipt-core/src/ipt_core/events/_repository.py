"""All SQL of the outbox family: outbox rows, event sequences, publication, feed, retention.

SQLAlchemy Core against `ipt_core.db.schema`; callers (the write listener, the relay, the feed
routes, replay) build no SQL. See docs/architecture.md#events-outbox-and-relay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.json_rows import json_rows, rows_json
from ipt_core.db.parts import PartSql, RowsPart
from ipt_core.db.schema import (
    event_sequence,
    is_pending,
    outbox,
    webhook_delivery,
)
from ipt_core.db.unnest import unnest_params

__all__ = [
    "FEED_CHANNEL",
    "OUTBOX_CHANNEL",
    "RELAY_ASLEEP_LOCK",
    "FeedEntry",
    "OutboxEvent",
    "any_unpublished",
    "append_numbered",
    "delete_expired_events",
    "history",
    "insert_events",
    "numbered_rows_part",
    "oldest_unpublished",
    "read_feed",
    "reserve_sequences",
    "unpublished",
]

# LISTEN/NOTIFY channel that wakes the relay. PostgreSQL delivers a notification only when
# the transaction commits, and folds identical ones of a transaction into one.
OUTBOX_CHANNEL: Final = "ipt_outbox"
# The relay leader holds this advisory lock (session, exclusive) only while it sleeps. A writer
# appending events NOTIFYs only when it cannot take it shared (for its transaction): when the
# relay sleeps or is about to. An awake relay polls again before it sleeps, and cannot sleep
# while a writer that did not NOTIFY is still in flight (it holds the lock shared until its
# commit). A NOTIFY per commit cost a create ~0.19 ms of the machine's CPU: PostgreSQL queues
# each one, serializing the committers, and signals the listener, which wakes and forwards it
# (bench/PROFILE.md, "Fifteenth round"; docs/architecture.md, "Events: outbox and relay").
RELAY_ASLEEP_LOCK: Final = int.from_bytes(
    hashlib.sha256(b"ipt-care-service:event-relay:asleep").digest()[:8], "big", signed=True
)
# Notified (on commit) when events were published: wakes long-polling feed readers.
FEED_CHANNEL: Final = "ipt_feed"


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row as publishers see it: global `seq`, id, type, partition key, envelope.

    `partition_key` is the course id (or `Type/id`): events of one key are delivered in order.
    """

    seq: int
    id: str
    type: str
    partition_key: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class FeedEntry:
    """One published event and its feed position (the cursor a consumer resumes from)."""

    position: int
    envelope: dict[str, Any]


_EVENT_COLUMNS: Final = (outbox.c.seq, outbox.c.id, outbox.c.type, outbox.c.aggregateid)


# Statements of the write and publish paths are built once, here: building a Core statement
# and its cache key on every call costs more CPU than the round trip it replaces
# (docs/architecture.md#events-outbox-and-relay). Rows travel as arrays (`unnest`) or, in a
# write's own statement, as one JSON text (`json_rows`), so one statement serves any number.
def _reserving(counts: Select[Any]) -> ReturningInsert[Any]:
    """Add `counts` (key, count rows, in key order) to the keys' counters; return each key's
    last number. Locked in key order, so two writers of the same keys cannot deadlock."""
    upsert = pg_insert(event_sequence).from_select(["aggregateid", "last"], counts)
    return upsert.on_conflict_do_update(
        index_elements=[event_sequence.c.aggregateid],
        set_={"last": event_sequence.c.last + upsert.excluded.last},
    ).returning(event_sequence.c.aggregateid, event_sequence.c.last)


_reserved = unnest_params("rows", aggregateid=Text, count=BigInteger)
_RESERVE: Final = _reserving(
    select(_reserved.c.aggregateid, _reserved.c.count).order_by(_reserved.c.aggregateid)
)
_COPIED: Final = ("id", "aggregatetype", "aggregateid", "type", "traceparent", "created_at")
# The envelope travels as JSON text (serialized once, by the caller) and is cast to jsonb here.
_new_types: Final[dict[str, Any]] = {
    "payload": Text,
    **{name: outbox.c[name].type for name in _COPIED},
}
_new = unnest_params("rows", **_new_types)


def _wake_the_relay() -> ColumnElement[Any]:
    """NOTIFY the relay unless it is awake (`RELAY_ASLEEP_LOCK`); NULL either way."""
    awake = func.pg_try_advisory_xact_lock_shared(RELAY_ASLEEP_LOCK)
    return case((awake, null()), else_=func.pg_notify(OUTBOX_CHANNEL, ""))


_APPEND: Final = select(_wake_the_relay()).add_cte(
    insert(outbox)
    .from_select(
        [*_COPIED, "payload"],
        select(*(_new.c[name] for name in _COPIED), cast(_new.c.payload, JSONB)),
    )
    .cte("appended")  # PostgreSQL runs a data-modifying CTE whether or not the query reads it
)


# Numbering and appending in one statement (the write listeners' and the status engine's
# path; a single resource's write takes it into its own statement): the envelopes arrive
# without their `sequence`, in order; per partition key the counter row is reserved for all
# of that key's rows at once (locked in key order, as `_RESERVE`), each row takes the next
# number in the given order, written into its payload, and the rows are inserted in the
# given order, so `seq` follows each key's `sequence`. One round trip instead of two on
# every write (bench/PROFILE.md, "Third round").
def numbered_append(prefix: str, written: ColumnElement[bool] | None) -> PartSql:
    """Number and append outbox rows bound as `<prefix>_rows` (`numbered_rows_part`); wake
    the relay.

    The rows carry the columns of `_new_types` (the payload without its `sequence`) and their
    position `n`; see `ipt_core.db.parts` for `prefix` and `written`. The wake-up is a result
    column: it runs once per result row, and PostgreSQL folds a transaction's identical
    notifications.
    """
    # A CTE read twice, so PostgreSQL parses the JSON once (a status batch's is ~1,000 events).
    rows = json_rows("rows", f"{prefix}_rows", **_new_types, n=BigInteger)
    ordered = select(rows).cte(f"{prefix}_in")
    counts = select(ordered.c.aggregateid, func.count())
    if written is not None:
        counts = counts.where(written)
    reservation = _reserving(
        counts.group_by(ordered.c.aggregateid).order_by(ordered.c.aggregateid)
    ).cte(f"{prefix}_reserved")
    number = (
        reservation.c.last
        - func.count().over(partition_by=ordered.c.aggregateid)
        + func.row_number().over(partition_by=ordered.c.aggregateid, order_by=ordered.c.n)
    )
    numbered = (
        select(
            *(ordered.c[name] for name in _COPIED),
            ordered.c.payload,
            ordered.c.n,
            number.label("number"),
        )
        .join_from(ordered, reservation, reservation.c.aggregateid == ordered.c.aggregateid)
        .subquery("numbered")
    )
    appended = insert(outbox).from_select(
        [*_COPIED, "payload"],
        select(
            *(numbered.c[name] for name in _COPIED),
            func.jsonb_set(
                cast(numbered.c.payload, JSONB),
                literal_column("'{sequence}'"),  # a constant path, not one more array to bind
                func.to_jsonb(func.lpad(cast(numbered.c.number, Text), 20, "0")),
            ),
        ).order_by(numbered.c.n),
    )
    notified = _wake_the_relay().label(f"{prefix}_notified")
    return PartSql((reservation, appended.cte(f"{prefix}_appended")), (notified,))


_numbered_alone = numbered_append("each", None)
_APPEND_NUMBERED: Final = FixedStatement(
    select(*_numbered_alone.columns).add_cte(*_numbered_alone.ctes)
)


def oldest_unpublished(*columns: Any) -> Select[Any]:
    """`columns` of the oldest unpublished events, up to `:limit`, locked (only the relay
    leader publishes; the lock keeps a leader that lost its lock mid-batch from publishing
    them twice)."""
    return (
        select(*columns)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.seq)
        .limit(bindparam("limit"))
        .with_for_update()
    )


_UNPUBLISHED: Final = oldest_unpublished(*_EVENT_COLUMNS, outbox.c.payload)


async def reserve_sequences(conn: AsyncConnection, counts: Mapping[str, int]) -> dict[str, int]:
    """Reserve `counts[key]` sequence numbers per aggregate; return the first of each key.

    One statement for every key. The counter rows stay locked until the caller's transaction
    ends, so concurrent writers of one course get increasing, gap-free numbers in commit order;
    keys are locked in sorted order, so two writers of the same courses cannot deadlock.
    """
    if not counts:
        return {}
    rows = await conn.execute(
        _RESERVE, {"each_aggregateid": list(counts), "each_count": list(counts.values())}
    )
    return {row.aggregateid: int(row.last) - counts[row.aggregateid] + 1 for row in rows}


async def insert_events(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert outbox rows and NOTIFY the relay, in one statement (one round trip per write).

    Each row maps the outbox columns; `payload` is the envelope already serialized as JSON.
    """
    if rows:
        columns = {f"each_{name}": [row[name] for row in rows] for name in _new.c.keys()}  # noqa: SIM118
        await conn.execute(_APPEND, columns)


async def append_numbered(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert outbox rows numbered per partition key in the given order, and NOTIFY the relay.

    As `reserve_sequences` then `insert_events` in one statement: each row's `payload` (its
    envelope as JSON text) gets the `sequence` that is next for its `aggregateid`, zero-padded
    to 20 digits, as `next_sequence` one event at a time would give.
    """
    if rows:
        await _APPEND_NUMBERED.execute(conn, numbered_rows_part(rows).bound("each"))


def numbered_rows_part(rows: Sequence[Mapping[str, Any]]) -> RowsPart:
    """`append_numbered` of `rows` as a part of another statement (`ipt_core.db.parts`)."""
    columns = (*_new_types, "n")
    values = ((*(row[name] for name in _new_types), n) for n, row in enumerate(rows, 1))
    return RowsPart(numbered_append, {"rows": rows_json(columns, values)})


async def any_unpublished(conn: AsyncConnection) -> bool:
    """Whether an event waits to be published (the relay looks before it sleeps)."""
    return bool(await conn.scalar(select(exists().where(outbox.c.published_at.is_(None)))))


async def unpublished(conn: AsyncConnection, limit: int) -> list[OutboxEvent]:
    """Lock and return the oldest unpublished events, in `seq` order.

    `seq` order is commit order within one course (writers of a course queue on its
    `event_sequence` row), which is the order publishers must keep.
    """
    return [_event(row) for row in await conn.execute(_UNPUBLISHED, {"limit": limit})]


async def history(
    conn: AsyncConnection, *, since: datetime, until: datetime, after_seq: int, limit: int
) -> list[OutboxEvent]:
    """Stored events created in [since, until) with `seq` above `after_seq`, in `seq` order."""
    rows = await conn.execute(
        select(*_EVENT_COLUMNS, outbox.c.payload)
        .where(outbox.c.created_at >= since, outbox.c.created_at < until, outbox.c.seq > after_seq)
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    return [_event(row) for row in rows]


async def read_feed(
    conn: AsyncConnection, *, after: int, types: Sequence[str] = (), limit: int = 100
) -> list[FeedEntry]:
    """Return up to `limit` events published after position `after`, oldest first.

    Positions are numbered by the one relay leader as it publishes, so a consumer that
    resumes after the last position it saw never misses an event that committed later.
    """
    query = select(outbox.c.feed_position, outbox.c.payload).where(outbox.c.feed_position > after)
    if types:
        query = query.where(outbox.c.type.in_(list(types)))
    rows = await conn.execute(query.order_by(outbox.c.feed_position).limit(limit))
    return [FeedEntry(row.feed_position, row.payload) for row in rows]


async def delete_expired_events(conn: AsyncConnection, cutoff: datetime, *, chunk: int) -> int:
    """Delete up to `chunk` published events created before `cutoff`; return how many.

    An event some webhook endpoint still waits for stays (its delivery needs the envelope);
    `event_sequence` is never trimmed, so a course's `sequence` keeps increasing.
    Call it again until it returns less than `chunk`.
    """
    old = outbox.alias("old")  # not correlated with the DELETE's own `outbox`
    waited_for = exists().where(
        webhook_delivery.c.event_seq == old.c.seq, is_pending(webhook_delivery.c.status)
    )
    expired = (
        select(old.c.seq)
        .where(old.c.created_at < cutoff, old.c.published_at < cutoff, ~waited_for)
        .limit(chunk)
    )
    deleted = await conn.execute(delete(outbox).where(outbox.c.seq.in_(expired)))
    return int(deleted.rowcount)


def _event(row: Any) -> OutboxEvent:
    return OutboxEvent(row.seq, row.id, row.type, row.aggregateid, row.payload)
