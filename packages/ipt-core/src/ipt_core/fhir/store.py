"""The versioned FHIR resource store: create, read, update, delete, conditional variants.

Every write happens inside the caller's transaction (the unit of work belongs to the request
or the worker loop) and, in that same transaction, writes the current row, a history row,
the search-index rows, and whatever the registered listeners add (IPT projections,
recompute requests, outbox events). Nothing is half-written after a crash. A write of one
resource carries the rows of listeners that have the rows form (the outbox's event, the
audit record) in its own statement (`ipt_core.fhir.listeners`). A `create` may also be called
on a connection in autocommit: it is then one statement when that is all it needs, else a
transaction of its own.

Race safety: writers of one resource queue on its row lock (`SELECT … FOR UPDATE`), so of
concurrent `If-Match` updates of one version exactly one wins; conditional writes with the
same criteria queue on an advisory lock, so concurrent conditional creates make one resource.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core import ids
from ipt_core.db.driver import driver_transaction, outside_transaction
from ipt_core.fhir import _many
from ipt_core.fhir import _repository as rows
from ipt_core.fhir._many import PutFailed
from ipt_core.fhir._one import OneWrite
from ipt_core.fhir._reads import DriverReads, live, live_version, version_number
from ipt_core.fhir._versions import (
    check_body,
    check_id,
    check_update_id,
    check_version,
    definition_or_404,
    deletion,
    new_version,
    with_meta,
)
from ipt_core.fhir._writes import RowWrite
from ipt_core.fhir.criteria import matching_ids, normalize_criteria
from ipt_core.fhir.errors import (
    InvalidRequest,
    MultipleMatches,
    PreconditionFailed,
    ResourceGone,
    ResourceNotFound,
)
from ipt_core.fhir.listeners import WriteListener
from ipt_core.fhir.model import (
    Change,
    ResourcePut,
    StoredResource,
    VersionedWrite,
    WriteCause,
    WriteResult,
)
from ipt_core.fhir.registry import ResourceDefinition
from ipt_core.fhir.search import DEFAULT_SEARCH_LIMITS, SearchLimits

__all__ = [
    "Clock",
    "DriverReads",
    "PutFailed",
    "ResourceChange",
    "ResourceStore",
    "WriteListener",
    "check_id",
    "definition_or_404",
    "with_meta",
]

Clock = Callable[[], datetime]
ResourceChange = Callable[[dict[str, Any]], dict[str, Any]]  # e.g. a JSON Patch, applied


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ResourceStore:
    """Reads and writes FHIR resources over one database connection (one transaction)."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        listeners: Sequence[WriteListener] = (),
        clock: Clock = _utc_now,
        cause: WriteCause = WriteCause.CLIENT,
        search_limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
    ) -> None:
        """Bind the store to `conn`; `listeners` run inside every write's transaction.

        `cause` is the default cause of this store's writes; each write call may name another.
        `search_limits` bound the searches it runs (conditional criteria) and, by convention,
        those its callers run on the same request.
        """
        self.conn = conn
        self.listeners = tuple(listeners)
        self.clock = clock
        self.cause = cause
        self.search_limits = search_limits

    # -- reads -------------------------------------------------------------------------------

    async def read(
        self, resource_type: str, id_: str, *, for_update: bool = False
    ) -> StoredResource:
        """Return the current version. Raises ResourceNotFound, or ResourceGone if deleted.

        With `for_update`, other writers of the resource wait until this transaction ends:
        read-modify-write use cases then never fail on a version that changed meanwhile.
        """
        definition_or_404(resource_type)
        fetch = rows.lock_for_update if for_update else rows.current
        return live(await fetch(self.conn, resource_type, id_), resource_type, id_)

    async def read_any(
        self, resource_type: str, id_: str, *, for_update: bool = False
    ) -> StoredResource:
        """Return the current row, deleted or not. Raises ResourceNotFound if never written.

        With `for_update`, the row stays locked until this transaction ends, as in `read`.
        """
        definition_or_404(resource_type)
        fetch = rows.lock_for_update if for_update else rows.current
        stored = await fetch(self.conn, resource_type, id_)
        if stored is None:
            raise ResourceNotFound(f"{resource_type}/{id_} is not known")
        return stored

    async def read_many(
        self, keys: Sequence[tuple[str, str]], *, for_update: bool = False
    ) -> dict[tuple[str, str], StoredResource]:
        """Return the current rows of `keys` (type, id), deleted or not, in one statement.

        Those never written are missing from the answer. With `for_update`, the rows stay
        locked until this transaction ends, taken in `(type, id)` order like every set-based
        writer's, so two batches never deadlock.
        """
        fetch = rows.lock_many if for_update else rows.current_many
        return await fetch(self.conn, keys)

    async def vread(self, resource_type: str, id_: str, version_id: str) -> StoredResource:
        """Return one version. Raises ResourceNotFound, or ResourceGone for a deletion."""
        number = version_number(resource_type, id_, version_id)
        stored = await rows.version(self.conn, resource_type, id_, number)
        return live_version(stored, resource_type, id_, version_id)

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self,
        resource_type: str,
        resource: dict[str, Any],
        *,
        if_none_exist: str | None = None,
        new_id: str | None = None,
        cause: WriteCause | None = None,
    ) -> WriteResult:
        """Create `resource` with a new server id (a client id is ignored, as R4 says).

        With `if_none_exist` (the `If-None-Exist` criteria), an existing single match is
        returned instead, several matches are a 412. `new_id` is the id the server chose
        beforehand (a transaction assigns ids before writing, to resolve `urn:uuid:`s).
        """
        definition = check_body(resource, resource_type)
        return await self._create(
            definition, resource, if_none_exist, new_id or ids.new_id(), cause or self.cause
        )

    async def update(
        self,
        resource_type: str,
        id_: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        cause: WriteCause | None = None,
    ) -> WriteResult:
        """Update (or create, with a client id) `resource_type/id_`, honouring `If-Match`."""
        check_id(id_)
        definition = check_body(resource, resource_type)
        check_update_id(resource, resource_type, id_)
        previous = await rows.lock_for_update(self.conn, resource_type, id_)
        check_version(previous, if_match)
        return await self._write(definition, id_, resource, previous, cause or self.cause)

    async def conditional_update(
        self,
        resource_type: str,
        criteria: str,
        resource: dict[str, Any],
        *,
        if_match: int | None = None,
        cause: WriteCause | None = None,
    ) -> WriteResult:
        """Update the one resource matching `criteria`, or create one when none does."""
        definition = check_body(resource, resource_type)
        match = await self._locked_match(definition, criteria)
        body_id = resource.get("id")
        if match is None:
            if if_match is not None:
                raise PreconditionFailed("If-Match was given but no resource matches")
            new_id = check_id(body_id) if isinstance(body_id, str) else ids.new_id()
            previous = await rows.lock_for_update(self.conn, resource_type, new_id)
            return await self._write(definition, new_id, resource, previous, cause or self.cause)
        if body_id is not None and body_id != match:
            raise InvalidRequest(
                f"The resource's id {body_id!r} differs from the matching resource {match!r}",
                expression=(f"{resource_type}.id",),
            )
        previous = await rows.lock_for_update(self.conn, resource_type, match)
        check_version(previous, if_match)
        body = {**resource, "id": match}
        return await self._write(definition, match, body, previous, cause or self.cause)

    async def delete(
        self, resource_type: str, id_: str, *, cause: WriteCause | None = None
    ) -> StoredResource | None:
        """Delete a resource; deleting a missing or deleted one succeeds and returns None."""
        definition_or_404(resource_type)
        previous = await rows.lock_for_update(self.conn, resource_type, id_)
        if previous is None or previous.deleted:
            return None
        row, change = deletion(previous, self.clock(), cause or self.cause)
        await self._write_told(row, change)  # locked: written
        return row.stored

    async def update_many(
        self, writes: Sequence[VersionedWrite], *, cause: WriteCause | None = None
    ) -> list[WriteResult | None]:
        """Update each resource of `writes` still at its `if_match` version, set-based.

        The rows are locked in `(type, id)` order, those whose version moved on (or that
        are deleted) are skipped (None, nothing written), the rest are written with one
        statement and the listeners told of them in one batch. See `_many.update_many`.
        """
        return await _many.update_many(
            self.conn, self.listeners, writes, self.clock(), cause or self.cause
        )

    async def put_many(
        self, puts: Sequence[ResourcePut], *, cause: WriteCause | None = None
    ) -> list[WriteResult]:
        """Create or update every one of `puts` set-based, as one by one would (a transaction).

        Raises:
            PutFailed: naming the first put that failed, with its FhirError.
        """
        return await _many.put_many(
            self.conn, self.listeners, puts, self.clock, cause or self.cause
        )

    async def patch(
        self,
        resource_type: str,
        id_: str,
        change: ResourceChange,
        *,
        if_match: int | None = None,
        cause: WriteCause | None = None,
    ) -> WriteResult:
        """Apply `change` to the current version under its row lock and write the result.

        Concurrent patches of one resource queue on the lock, so none is lost; the result is
        validated like any update. Raises ResourceNotFound / ResourceGone / PreconditionFailed.
        """
        definition = definition_or_404(resource_type)
        previous = await rows.lock_for_update(self.conn, resource_type, id_)
        if previous is None:
            raise ResourceNotFound(f"{resource_type}/{id_} is not known")
        if previous.deleted:
            raise ResourceGone(f"{resource_type}/{id_} was deleted", expression=())
        check_version(previous, if_match)
        patched = change(orjson.loads(previous.content or "{}"))
        if patched.get("id") != id_:
            raise InvalidRequest(
                "A patch must not change or remove the resource's id",
                expression=(f"{resource_type}.id",),
            )
        check_body(patched, resource_type)
        return await self._write(definition, id_, patched, previous, cause or self.cause)

    async def conditional_patch(
        self,
        resource_type: str,
        criteria: str,
        change: ResourceChange,
        *,
        if_match: int | None = None,
        cause: WriteCause | None = None,
    ) -> WriteResult:
        """Patch the one resource matching `criteria`; none matching is a 404."""
        match = await self.locked_match(resource_type, criteria)
        if match is None:
            raise ResourceNotFound(f"No {resource_type} matches the criteria")
        return await self.patch(resource_type, match, change, if_match=if_match, cause=cause)

    async def locked_match(self, resource_type: str, criteria: str) -> str | None:
        """Return the id of the one resource matching `criteria` (None when none does).

        Holds, until the transaction ends, the lock conditional writes with the same
        criteria take, so the answer stays true for this transaction's writes.

        Raises:
            MultipleMatches: when several resources match.
        """
        return await self._locked_match(definition_or_404(resource_type), criteria)

    async def conditional_delete(
        self, resource_type: str, criteria: str, *, cause: WriteCause | None = None
    ) -> StoredResource | None:
        """Delete the one resource matching `criteria`; none matching is not an error."""
        definition = definition_or_404(resource_type)
        match = await self._locked_match(definition, criteria)
        return None if match is None else await self.delete(resource_type, match, cause=cause)

    # -- internals ---------------------------------------------------------------------------

    async def _create(
        self,
        definition: ResourceDefinition,
        resource: dict[str, Any],
        if_none_exist: str | None,
        id_: str,
        cause: WriteCause,
    ) -> WriteResult:
        """`create` of a validated body, in the caller's transaction or in autocommit.

        On a connection in autocommit, a create whose listeners all have the rows form, or
        are not concerned, is one statement, and PostgreSQL runs a statement atomically: it
        needs no `BEGIN` and `COMMIT`, two round trips of a create's three
        (docs/architecture.md, "Write path"). A listener with statements or a refusal of its
        own is told in a transaction begun here, and so are a conditional create and one
        that lost a creation race.
        """
        if await outside_transaction(self.conn):
            if if_none_exist is None:
                row, change = new_version(definition, id_, resource, None, self.clock(), cause)
                write = OneWrite.of(self.listeners, row, change)
                own = nullcontext(self.conn) if write.alone else driver_transaction(self.conn)
                async with own:
                    if await write.run(self.conn):
                        return WriteResult(row.stored, created=True)
            async with driver_transaction(self.conn):
                return await self._create(definition, resource, if_none_exist, id_, cause)
        if if_none_exist is not None:
            existing = await self._locked_match(definition, if_none_exist)
            if existing is not None:
                return WriteResult(
                    await self.read(definition.type, existing), created=False, changed=False
                )
        return await self._write(definition, id_, resource, None, cause)

    async def _locked_match(self, definition: ResourceDefinition, criteria: str) -> str | None:
        pairs = normalize_criteria(criteria)
        await rows.lock_key(self.conn, f"{definition.type}?{pairs!r}")
        ids = await matching_ids(self.conn, definition, pairs, self.search_limits)
        if len(ids) > 1:
            raise MultipleMatches(f"The criteria match more than one {definition.type}")
        return ids[0] if ids else None

    async def _write(
        self,
        definition: ResourceDefinition,
        id_: str,
        resource: dict[str, Any],
        previous: StoredResource | None,
        cause: WriteCause,
    ) -> WriteResult:
        row, change = new_version(definition, id_, resource, previous, self.clock(), cause)
        if not await self._write_told(row, change):
            # A concurrent writer created this id first (nothing was written, the listeners'
            # rows neither): become an update of its version.
            raced = await rows.lock_for_update(self.conn, definition.type, id_)
            return await self._write(definition, id_, resource, raced, cause)
        return WriteResult(row.stored, created=change.action == "create")

    async def _write_told(self, row: RowWrite, change: Change) -> bool:
        """Write one resource's rows and tell the listeners; False: nothing was written
        (a version 1 that lost its creation race)."""
        return await OneWrite.of(self.listeners, row, change).run(self.conn)
