"""Set-based writes: many resources locked, checked, written and told to listeners at once.

The status engine writes a course's derived values back with `update_many`
(docs/architecture.md#status-engine); transaction Bundles write their creates and updates
with `put_many`. Either way the rows are locked in one `(type, id)` order, written with one
statement (`_writes.py`) and the listeners hear of every change in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir import _repository as rows
from ipt_core.fhir._versions import check_body, check_id, check_update_id, new_version
from ipt_core.fhir._writes import write_rows
from ipt_core.fhir.listeners import WriteListener, tell
from ipt_core.fhir.model import VersionedWrite, WriteCause, WriteResult

__all__ = ["update_many"]


async def update_many(
    conn: AsyncConnection,
    listeners: Sequence[WriteListener],
    writes: Sequence[VersionedWrite],
    now: datetime,
    cause: WriteCause,
) -> list[WriteResult | None]:
    """Write each of `writes` whose resource is still at its `if_match` version.

    Returns one result per write, in order; None for a skipped one (moved on, deleted or
    never written), which writes nothing. Every body is validated before any SQL runs.

    Raises:
        ValueError: when a resource appears twice in `writes`.
        FhirError: an invalid body, or a listener refusing a change (the caller's
            transaction must then roll back, as for any failed write).
    """
    keys = [(w.resource_type, w.id) for w in writes]
    if len(set(keys)) != len(keys):
        raise ValueError("update_many writes each resource at most once")
    definitions = []
    for write in writes:
        check_id(write.id)
        definitions.append(check_body(write.body, write.resource_type))
        check_update_id(write.body, write.resource_type, write.id)
    if not writes:
        return []
    current = await rows.lock_many(conn, keys)
    prepared = []
    results: list[WriteResult | None] = []
    for write, definition, key in zip(writes, definitions, keys, strict=True):
        previous = current.get(key)
        if previous is None or previous.deleted or previous.version_id != write.if_match:
            results.append(None)
            continue
        prepared.append(new_version(definition, write.id, write.body, previous, now, cause))
        results.append(WriteResult(prepared[-1][0].stored, created=False))
    if prepared:
        # Every row is locked at its expected version, so every one of them is written.
        await write_rows(conn, [row for row, _ in prepared])
        await tell(conn, listeners, [change for _, change in prepared])
    return results
