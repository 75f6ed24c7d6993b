"""Audit records of writes, inserted in the write's own transaction (a store write listener).

A write that rolls back takes its record with it; the failure is then recorded on its own
(see `deps.get_connection`), so the trail never claims a change that did not happen.
The batch form appends a set-based write's records with one statement, in write order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_api.audit.trail import Access, AuditTrail, current_trail
from ipt_api.authz.compartment import patients_of
from ipt_core.audit import AuditRecord, insert_records, records_part
from ipt_core.db.parts import RowsPart
from ipt_core.fhir.model import Change

__all__ = ["AuditWriteListener"]


class AuditWriteListener:
    """Records each resource written during a request, with its patient when it has one."""

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Insert the audit record of `change` (no request, as in the worker: nothing)."""
        await self.resources_written(conn, [change])

    async def resources_written(self, conn: AsyncConnection, changes: Sequence[Change]) -> None:
        """Insert the audit records of `changes`, in order, with one statement."""
        trail = current_trail()
        if trail is None:
            return
        await insert_records(conn, _records(trail, changes))
        _recorded(trail, changes)

    def rows_part(self, changes: Sequence[Change]) -> RowsPart | None:
        """The audit records of `changes` as rows of the write's own statement (none outside
        a request: the worker's writes are not a client's accesses)."""
        trail = current_trail()
        if trail is None:
            return None
        part = records_part(_records(trail, changes))
        return replace(part, done=lambda: _recorded(trail, changes))


def _recorded(trail: AuditTrail, changes: Sequence[Change]) -> None:
    # The request's own note of these writes is then not recorded again (`AuditTrail.pending`).
    trail.written_types.update(change.stored.resource_type for change in changes)


def _records(trail: AuditTrail, changes: Sequence[Change]) -> list[AuditRecord]:
    records = []
    for change in changes:
        stored = change.stored
        content = change.resource
        if content is None and change.previous is not None and change.previous.content:
            content = orjson.loads(change.previous.content)
        patients = sorted(patients_of(stored.resource_type, content or {}))
        access = Access(
            change.action,
            stored.resource_type,
            stored.id,
            stored.version_id,
            patient_id=patients[0] if patients else None,
        )
        status = 201 if change.action == "create" else 200
        records.append(trail.record(access, status))
    return records
