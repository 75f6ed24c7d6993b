"""A write of one resource: its rows, its listeners' rows in the same statement, the others.

The listeners with the rows form (the outbox's event, the audit record) add their rows to the
write's statement (`ipt_core.db.parts`); the other listeners the change concerns are told
afterwards, in their order. With none of those, the write is one statement, atomic on its own
(`ResourceStore.create` on a connection in autocommit; docs/architecture.md, "Write path").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.parts import RowsPart
from ipt_core.fhir._writes import RowWrite, write_rows
from ipt_core.fhir.listeners import WriteListener, parts_done, rows_parts, tell
from ipt_core.fhir.model import Change

__all__ = ["OneWrite"]


@dataclass(frozen=True)
class OneWrite:
    """One resource's version to write, with its listeners' parts and the listeners to tell."""

    row: RowWrite
    change: Change
    parts: Sequence[RowsPart]
    others: Sequence[WriteListener]

    @classmethod
    def of(cls, listeners: Sequence[WriteListener], row: RowWrite, change: Change) -> OneWrite:
        """The write of `row` for `change`, `listeners` sorted into parts and others."""
        parts, others = rows_parts(listeners, [change])
        return cls(row, change, parts, others)

    @property
    def alone(self) -> bool:
        """Whether the write is its one statement and nothing more."""
        return not self.others

    async def run(self, conn: AsyncConnection) -> bool:
        """Write the rows and tell the listeners; False: nothing was written.

        Nothing is written, and nobody told, when a version 1 lost its creation race.
        """
        if not await write_rows(conn, [self.row], self.parts):
            return False
        await tell(conn, self.others, [self.change])
        parts_done(self.parts)
        return True
