"""Write listeners: what must change in the same transaction as resource writes.

A listener has the single form (`resource_written`, one change at a time) and may have the
batch form too (`resources_written`, every change of one set-based write at once, in write
order), which saves round trips: the outbox appends a batch's events with one statement.
A batch listener refusing one change of the batch raises `ChangeRefused`, naming it, so a
transaction Bundle can name the entry it came from.
The store tells each listener in turn, in the order they were composed
(docs/architecture.md#write-path); raising aborts the whole write.

A listener whose reaction is only rows to insert may have the rows form too (`rows_part`):
a write of one resource then carries those rows in its own statement (`ipt_core.db.parts`),
one round trip instead of two, and tells the other listeners afterwards, in their order.
Everything stays one transaction, so a later listener's refusal still takes the rows back.

A listener that reacts to some writes only may say which (`concerns`): it is then told of a
write only when it concerns it. A create whose every listener is of the rows form or not
concerned is one statement, which needs no transaction of its own (`ResourceStore.create`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.parts import RowsPart
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.model import Change

__all__ = [
    "BatchWriteListener",
    "ChangeRefused",
    "RowsListener",
    "SelectiveListener",
    "WriteListener",
    "concerned",
    "parts_done",
    "rows_parts",
    "tell",
]


class ChangeRefused(Exception):
    """A batch listener refused the change at `index` of its batch, for `error`."""

    def __init__(self, index: int, error: FhirError) -> None:
        """Name the refused change (its position in the batch) and the error."""
        super().__init__(index, error)
        self.index = index
        self.error = error


class WriteListener(Protocol):
    """Something that must change in the same transaction as a resource write."""

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """React to `change`; raising aborts the whole write."""


class BatchWriteListener(WriteListener, Protocol):
    """A listener that can also take every change of a set-based write at once."""

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """React to `changes` (in write order); raising aborts the whole write."""


class SelectiveListener(WriteListener, Protocol):
    """A listener that reacts to some writes only, and says which before it is told."""

    def concerns(self, change: Change) -> bool:
        """False when telling it of `change` would do nothing: no statement, no refusal."""


class RowsListener(WriteListener, Protocol):
    """A listener that can also hand its rows to the write's own statement."""

    def rows_part(self, changes: Sequence[Change]) -> RowsPart | None:
        """The rows `changes` call for (None: nothing), inserted with the write."""


def rows_parts(
    listeners: Sequence[WriteListener], changes: Sequence[Change]
) -> tuple[list[RowsPart], list[WriteListener]]:
    """The parts of the listeners with the rows form, and the others `changes` concern."""
    parts: list[RowsPart] = []
    others: list[WriteListener] = []
    for listener in listeners:
        rows_part = getattr(listener, "rows_part", None)
        if rows_part is None:
            if concerned(listener, changes):
                others.append(listener)
        elif (part := rows_part(changes)) is not None:
            parts.append(part)
    return parts, others


def concerned(listener: WriteListener, changes: Sequence[Change]) -> bool:
    """Whether any of `changes` concerns `listener` (every change does, unless it says)."""
    concerns = getattr(listener, "concerns", None)
    return concerns is None or any(map(concerns, changes))


def parts_done(parts: Sequence[RowsPart]) -> None:
    """Tell the parts' listeners that the write is complete (`RowsPart.done`)."""
    for part in parts:
        if part.done is not None:
            part.done()


async def tell(
    conn: AsyncConnection, listeners: Sequence[WriteListener], changes: Sequence[Change]
) -> None:
    """Tell every listener, in order, of `changes`: in one call when it has the batch form.

    A listener none of `changes` concerns is not told; one that some concern is told of all.
    """
    if not changes:
        return
    for listener in listeners:
        if not concerned(listener, changes):
            continue
        batch = getattr(listener, "resources_written", None)
        if batch is not None:
            try:
                await batch(conn, changes)
            except ChangeRefused as refused:
                raise refused.error from None
            continue
        for change in changes:
            await listener.resource_written(conn, change)
