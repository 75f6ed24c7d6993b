"""Set-based writes: many resources locked, checked, written and told to listeners at once.

The status engine writes a course's derived values back with `update_many`
(docs/architecture.md#status-engine); transaction Bundles write their creates and updates
with `put_many`. Either way the rows are locked in one `(type, id)` order, written with one
statement (`_writes.py`) and the listeners hear of every change in one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir import _repository as rows
from ipt_core.fhir._versions import (
    check_body,
    check_id,
    check_update_id,
    check_version,
    definition_or_404,
    new_version,
)
from ipt_core.fhir._writes import RowWrite, write_rows
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.index import same_index
from ipt_core.fhir.listeners import ChangeRefused, WriteListener, tell
from ipt_core.fhir.model import (
    Change,
    ResourcePut,
    StoredResource,
    VersionedWrite,
    WriteCause,
    WriteResult,
)

__all__ = ["PutFailed", "put_many", "update_many"]


async def update_many(
    conn: AsyncConnection,
    listeners: Sequence[WriteListener],
    writes: Sequence[VersionedWrite],
    now: datetime,
    cause: WriteCause,
) -> list[WriteResult | None]:
    """Write each of `writes` whose resource is still at its `if_match` version.

    Returns one result per write, in order; None for a skipped one (moved on, deleted or
    never written), which writes nothing. Every body is validated before anything is
    written: a client's before any SQL runs, a `derived_from_stored` one against the
    version it was derived from once that version is locked (`validation.check_resource`).

    Raises:
        ValueError: when a resource appears twice in `writes`, or a write is
            `derived_from_stored` and `cause` is not `STATUS_WRITEBACK`.
        FhirError: an invalid body, or a listener refusing a change (the caller's
            transaction must then roll back, as for any failed write).
    """
    keys = [(w.resource_type, w.id) for w in writes]
    if len(set(keys)) != len(keys):
        raise ValueError("update_many writes each resource at most once")
    if cause is not WriteCause.STATUS_WRITEBACK and any(w.derived_from_stored for w in writes):
        raise ValueError("only status write-backs skip the model validation of their bodies")
    for write in writes:
        check_id(write.id)
        if not write.derived_from_stored:
            check_body(write.body, write.resource_type)
        check_update_id(write.body, write.resource_type, write.id)
    if not writes:
        return []
    current = await rows.lock_many(conn, keys)
    prepared = []
    results: list[WriteResult | None] = []
    for write, key in zip(writes, keys, strict=True):
        previous = current.get(key)
        if previous is None or previous.deleted or previous.version_id != write.if_match:
            results.append(None)
            continue
        keep_index = False
        if write.derived_from_stored:
            stored = orjson.loads(previous.content or "{}")
            definition = check_body(write.body, write.resource_type, derived_from=stored)
            # A derived body rarely changes a searchable element (the phase extension is not
            # one): its version's index rows then stay, neither extracted nor rewritten.
            keep_index = same_index(definition, stored, write.body)
        else:
            definition = definition_or_404(write.resource_type)
        prepared.append(
            new_version(
                definition, write.id, write.body, previous, now, cause, keep_index=keep_index
            )
        )
        results.append(WriteResult(prepared[-1][0].stored, created=False))
    if prepared:
        # Every row is locked at its expected version, so every one of them is written.
        await write_rows(conn, [row for row, _ in prepared])
        await tell(conn, listeners, [change for _, change in prepared])
    return results


class PutFailed(Exception):
    """A write of `put_many` failed: `position` is the failing put's index, `error` why."""

    def __init__(self, position: int, error: FhirError) -> None:
        """Wrap `error`, raised for the put at `position`."""
        super().__init__(position, error)
        self.position = position
        self.error = error


async def put_many(
    conn: AsyncConnection,
    listeners: Sequence[WriteListener],
    puts: Sequence[ResourcePut],
    clock: Callable[[], datetime],
    cause: WriteCause,
) -> list[WriteResult]:
    """Create or update every one of `puts`, set-based, with the semantics of one by one.

    Each put is checked in order (body, id, `If-Match` against the locked row); then all
    are written with one statement and the listeners told in one batch. A resource named
    twice starts a new round (the second write sees the first).

    Raises:
        PutFailed: the first put (in order) that fails a check or that a listener refuses;
            nothing is left written once the caller's transaction rolls back.
    """
    results: list[WriteResult] = []
    start = 0
    while start < len(puts):
        end, seen = start, set()
        while end < len(puts) and (puts[end].resource_type, puts[end].id) not in seen:
            seen.add((puts[end].resource_type, puts[end].id))
            end += 1
        results += await _put_round(conn, listeners, puts[start:end], start, clock(), cause)
        start = end
    return results


async def _put_round(
    conn: AsyncConnection,
    listeners: Sequence[WriteListener],
    puts: Sequence[ResourcePut],
    offset: int,
    now: datetime,
    cause: WriteCause,
) -> list[WriteResult]:
    updates = [(p.resource_type, p.id) for p in puts if not p.create]
    current = await rows.lock_many(conn, updates) if updates else {}
    prepared: list[tuple[RowWrite, Change]] = []
    for position, put in enumerate(puts, start=offset):
        try:
            prepared.append(_checked_version(put, current, now, cause))
        except FhirError as error:
            raise PutFailed(position, error) from None
    written = await write_rows(conn, [row for row, _ in prepared])
    for index, (row, _) in enumerate(prepared):
        key = (row.stored.resource_type, row.stored.id)
        while key not in written:
            # A concurrent writer created this id first: become an update of its version.
            raced = await rows.lock_for_update(conn, *key)
            definition = definition_or_404(key[0])
            prepared[index] = new_version(definition, key[1], puts[index].body, raced, now, cause)
            written |= await write_rows(conn, [prepared[index][0]])
    await _tell_each(conn, listeners, [change for _, change in prepared], offset)
    return [WriteResult(row.stored, created=change.action == "create") for row, change in prepared]


def _checked_version(
    put: ResourcePut,
    current: dict[tuple[str, str], StoredResource],
    now: datetime,
    cause: WriteCause,
) -> tuple[RowWrite, Change]:
    if not put.create:
        check_id(put.id)
    definition = check_body(put.body, put.resource_type)
    if put.create:
        return new_version(definition, put.id, put.body, None, now, cause)
    check_update_id(put.body, put.resource_type, put.id)
    previous = current.get((put.resource_type, put.id))
    check_version(previous, put.if_match)
    return new_version(definition, put.id, put.body, previous, now, cause)


async def _tell_each(
    conn: AsyncConnection, listeners: Sequence[WriteListener], changes: list[Change], offset: int
) -> None:
    """`listeners.tell`, naming the put whose change a listener refused."""
    for listener in listeners:
        batch = getattr(listener, "resources_written", None)
        if batch is not None:
            try:
                await batch(conn, changes)
            except ChangeRefused as refused:
                raise PutFailed(offset + refused.index, refused.error) from None
            except FhirError as error:  # a batch refusal names no change: the round's first
                raise PutFailed(offset, error) from None
            continue
        for position, change in enumerate(changes, start=offset):
            try:
                await listener.resource_written(conn, change)
            except FhirError as error:
                raise PutFailed(position, error) from None
