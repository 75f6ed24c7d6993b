"""The push half of the EHR sync: claim queued work, send it, remember the EHR's ids.

For each item (docs/ehr-sync.md):
- a type the EHR does not accept (CapabilityStatement) is skipped, never dead-lettered;
- references are rewritten to the EHR's ids; a referenced resource the EHR accepts but has
  not got yet is pushed first; the patient is matched by identifier;
- a resource we pushed before is updated with `If-Match` its remote version; a 409/412 is
  resolved by re-reading the EHR's version and applying our fields again; otherwise the EHR
  is written by conditional update on our sync identifier where it offers it, else searched
  by that identifier and then updated or created, so a retried push never duplicates (an
  EHR that cannot search a type by identifier gets a plain create: only the remembered
  remote id guards against a second copy there, see docs/ehr-sync.md);
- network errors, timeouts, 429 and 502/503/504 are retried with backoff (Retry-After
  obeyed), then the item is rescheduled; a 4xx refusal becomes a dead letter with the
  EHR's OperationOutcome; an unmatched patient too (shown to the user, never guessed).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr import repository as repo
from ipt_core.ehr.errors import (
    PatientNotMatched,
    RemoteAuthFailed,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    RemoteRejected,
    RemoteUnavailable,
)
from ipt_core.ehr.identifiers import SYNC_SOURCE, pulled_from
from ipt_core.ehr.listener import RESOURCE_KIND
from ipt_core.ehr.push_mapping import local_references, outgoing_resource
from ipt_core.ehr.repository import PushItem, RemoteRef
from ipt_core.ehr.summary import summary_document, summary_id
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.store import ResourceStore
from ipt_worker.ehr import metrics
from ipt_worker.ehr.context import EndpointSync
from ipt_worker.ehr.patients import remote_patient_of
from ipt_worker.ehr.summary_facts import course_summary

__all__ = ["push_due", "push_item"]

_log = logging.getLogger(__name__)
_MAX_DEPTH: Final = 3  # dependencies pushed first: CarePlan → Goal / Encounter → Observation
_CONFLICT_RETRIES: Final = 3


class _Skip(Exception):
    """The item needs no push (deleted here, or a type the EHR does not accept)."""


async def push_due(sync: EndpointSync) -> int:
    """Claim one batch of due items and push them; return how many were claimed."""
    async with sync.engine.begin() as conn:
        items = await repo.claim_push_items(
            conn,
            sync.name,
            sync.clock(),
            timedelta(seconds=sync.timing.lease_s),
            sync.timing.batch_size,
        )
    # A few items at once over the keep-alive pool: an EHR's latency, not ours, sets the pace.
    gate = asyncio.Semaphore(sync.timing.concurrency)

    async def one(item: PushItem) -> None:
        async with gate:
            await push_item(sync, item)

    await asyncio.gather(*(one(item) for item in items))
    return len(items)


async def push_item(sync: EndpointSync, item: PushItem) -> None:
    """Push one claimed item and settle it: done, rescheduled or dead-lettered."""
    try:
        ref, local_version = await _push(sync, item)
    except _Skip:
        await _settle_done(sync, item, None, None)
        metrics.count_synced(sync.name, "push", item.resource_type, "skipped")
    except (RemoteUnavailable, RemoteAuthFailed, RemoteConflict) as error:
        await _reschedule(sync, item, error)
    except PatientNotMatched as error:
        await _dead(sync, item, error, _unmatched_outcome(str(error)))
    except RemoteRejected as error:
        await _dead(sync, item, error, error.operation_outcome)
    except RemoteError as error:
        await _reschedule(sync, item, error)
    else:
        if ref is None:  # unchanged since the last push: nothing sent
            await _settle_done(sync, item, None, None)
            metrics.count_synced(sync.name, "push", _pushed_type(item), "unchanged")
            return
        ref = RemoteRef(ref.remote_id, ref.remote_version, local_version, "push")
        await _settle_done(sync, item, ref, local_version)
        metrics.count_synced(sync.name, "push", _pushed_type(item), "written")


# -- settling ----------------------------------------------------------------------------------


async def _settle_done(
    sync: EndpointSync, item: PushItem, ref: RemoteRef | None, local_version: int | None
) -> None:
    async with sync.engine.begin() as conn:
        if ref is not None:
            type_, id_ = _target(item)
            await repo.remember_remote(conn, sync.name, type_, id_, ref, sync.clock())
            await repo.record_endpoint_success(conn, sync.name, "push", sync.clock())
        await repo.finish_push_item(conn, item)


async def _reschedule(sync: EndpointSync, item: PushItem, error: RemoteError) -> None:
    metrics.count_failure(sync.name, "push", error.outcome)
    retry_after = error if isinstance(error, RemoteUnavailable) else RemoteUnavailable(str(error))
    delay = sync.remote.retry_delay(item.attempts + 1, retry_after)
    now = sync.clock()
    async with sync.engine.begin() as conn:
        await repo.reschedule_push_item(conn, item, now + timedelta(seconds=delay), str(error))
        await repo.record_endpoint_error(conn, sync.name, f"push: {error.outcome} {error}", now)


async def _dead(
    sync: EndpointSync, item: PushItem, error: RemoteError, outcome: dict[str, Any] | None
) -> None:
    metrics.count_failure(sync.name, "push", error.outcome)
    now = sync.clock()
    async with sync.engine.begin() as conn:
        await repo.dead_letter(conn, item, f"{error.outcome}: {error}", outcome, now)
        await repo.record_endpoint_error(conn, sync.name, f"push: {error.outcome}", now)


def _unmatched_outcome(message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": message}],
    }


# -- pushing -----------------------------------------------------------------------------------


def _target(item: PushItem) -> tuple[str, str]:
    if item.kind == RESOURCE_KIND:
        return item.resource_type, item.resource_id
    return "DocumentReference", summary_id(item.resource_id)


def _pushed_type(item: PushItem) -> str:
    return _target(item)[0]


async def _push(sync: EndpointSync, item: PushItem) -> tuple[RemoteRef | None, int | None]:
    if sync.capabilities is None:
        raise RemoteUnavailable("capabilities-unknown")
    type_, id_ = _target(item)
    if type_ not in sync.push_types():
        raise _Skip
    async with sync.engine.connect() as conn:
        if item.kind == RESOURCE_KIND:
            resource, version = await _local(conn, type_, id_)
            if sync.name in pulled_from(resource):
                raise _Skip  # the EHR's own resource: never pushed back
            known = await repo.remote_of(conn, sync.name, type_, id_)
            if known is not None and known.direction == "push" and known.local_version == version:
                return None, version
        else:
            summary = await course_summary(conn, item.resource_id)
            if summary is None:
                raise _Skip
            resource, version = summary_document(summary, sync.clock()), None
        ref = await _send(sync, conn, type_, id_, resource, stack=(f"{type_}/{id_}",))
    return ref, version


async def _local(conn: AsyncConnection, type_: str, id_: str) -> tuple[dict[str, Any], int]:
    try:
        stored = await ResourceStore(conn).read(type_, id_)
    except FhirError:
        raise _Skip from None
    content: dict[str, Any] = orjson.loads(stored.content or "{}")
    return content, stored.version_id


async def _send(
    sync: EndpointSync,
    conn: AsyncConnection,
    type_: str,
    id_: str,
    resource: dict[str, Any],
    *,
    stack: tuple[str, ...],
) -> RemoteRef:
    """Write `resource` to the EHR (its dependencies first); return the EHR's id and version."""
    refs = {ref: await _remote_ref(sync, conn, ref, stack) for ref in local_references(resource)}
    body = outgoing_resource(resource, type_, id_, refs)
    # One write of a resource at a time: a dependency pushed inline and its own queue item
    # must not both conditionally create it (not every EHR makes that atomic). The lock is
    # taken only around this write, never while waiting for another, so it cannot deadlock.
    async with sync.write_lock(f"{type_}/{id_}"):
        return await _write(sync, conn, type_, id_, body)


async def _write(
    sync: EndpointSync, conn: AsyncConnection, type_: str, id_: str, body: dict[str, Any]
) -> RemoteRef:
    known = await repo.remote_of(conn, sync.name, type_, id_)
    if known is not None and known.direction == "push":
        try:
            return await _update_known(sync, type_, known, body)
        except RemoteNotFound:
            pass  # deleted in the EHR (404 or 410): write it again, found by our identifier
    criteria = {"identifier": f"{SYNC_SOURCE}|{type_}/{id_}"}
    if sync.capabilities is not None and sync.capabilities.uses_conditional_update(type_):
        remote_id, version = await sync.remote.conditional_update(type_, criteria, body)
        return RemoteRef(remote_id, version, None, "push")
    if not sync.capabilities or not sync.capabilities.finds_by_identifier(type_):
        # Nothing to find our copy by: only the remembered id prevents a second one.
        remote_id, version = await sync.remote.create(type_, body)
        return RemoteRef(remote_id, version, None, "push")
    found = await sync.remote.search(type_, criteria)
    if found:
        existing = RemoteRef(str(found[0]["id"]), _version(found[0]), None, "push")
        return await _update_known(sync, type_, existing, body)
    remote_id, version = await sync.remote.create(type_, body)
    return RemoteRef(remote_id, version, None, "push")


async def _update_known(
    sync: EndpointSync, type_: str, known: RemoteRef, body: dict[str, Any]
) -> RemoteRef:
    """Update with If-Match; on 409/412 re-read the EHR's version and apply our fields again."""
    version = known.remote_version
    for _ in range(_CONFLICT_RETRIES):
        try:
            remote_id, new_version = await sync.remote.update(
                type_, known.remote_id, body, if_match=version
            )
            return RemoteRef(remote_id, new_version, None, "push")
        except RemoteConflict:
            current = await sync.remote.read(type_, known.remote_id)
            version = _version(current)
    raise RemoteConflict("version kept changing")


def _version(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("versionId") if isinstance(meta, dict) else None
    return str(value) if value is not None else None


async def _remote_ref(
    sync: EndpointSync, conn: AsyncConnection, reference: str, stack: tuple[str, ...]
) -> str | None:
    """The EHR's `Type/id` for our reference, pushing the target first when needed."""
    type_, id_ = reference.split("/", 1)
    if type_ == "Patient":
        return f"Patient/{await remote_patient_of(sync, conn, id_)}"
    known = await repo.remote_of(conn, sync.name, type_, id_)
    if known is not None and known.direction in {"push", "pull"}:
        return f"{type_}/{known.remote_id}"  # pushed before, or the EHR's own resource
    if type_ not in sync.push_types() or reference in stack or len(stack) >= _MAX_DEPTH:
        return None  # the EHR does not take it, or a cycle: the reference keeps its display
    try:
        resource, version = await _local(conn, type_, id_)
    except _Skip:
        return None
    ref = await _send(sync, conn, type_, id_, resource, stack=(*stack, reference))
    ref = RemoteRef(ref.remote_id, ref.remote_version, version, "push")
    async with sync.engine.begin() as write:
        await repo.remember_remote(write, sync.name, type_, id_, ref, sync.clock())
    return f"{type_}/{ref.remote_id}"
