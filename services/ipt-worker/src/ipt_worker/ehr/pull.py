"""The pull half of the EHR sync: new Encounters, Appointments and PHQ-9 scores of patients
with open courses, written through our FHIR store so auto-linking attaches them.

Per endpoint, type and patient a watermark (the greatest `meta.lastUpdated` stored) selects
what is new (`_lastUpdated=gt…`); it advances in the transaction that stores a page, so a crash
re-reads at most one page, and re-reading updates rather than duplicates (conditional update
on the identifier naming the EHR and its id). Resources we pushed (our sync identifier) are
never pulled in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr import repository as repo
from ipt_core.ehr.errors import PatientNotMatched, RemoteError
from ipt_core.ehr.identifiers import pushed_by_us
from ipt_core.ehr.pull_mapping import concerns_patient, incoming_resource, pull_criteria
from ipt_core.ehr.push_mapping import local_references
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.model import WriteCause
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt.codes import LOINC, PHQ9_TOTAL
from ipt_core.ipt.projections import repository as ipt_rows
from ipt_worker.ehr import metrics
from ipt_worker.ehr.context import EndpointSync
from ipt_worker.ehr.patients import remote_patient_of

__all__ = ["PullCounts", "pull_once"]

_log = logging.getLogger(__name__)
_PATIENT_PARAM: Final = {"Encounter": "patient", "Appointment": "patient", "Observation": "patient"}
_OPEN_STATUSES: Final = ("draft", "active", "on-hold")


@dataclass
class PullCounts:
    """What one pull pass did."""

    stored: int = 0
    skipped: int = 0  # ours (pushed), or refused by our store
    unmatched_patients: int = 0
    failed: int = 0


async def pull_once(
    sync: EndpointSync,
    *,
    since: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PullCounts:
    """Pull every configured type for every patient with an open course.

    Args:
        sync: The endpoint.
        since: Use this instant instead of the stored watermarks (backfills).
        progress: Called after each (patient, type) with how many of them are done and
            how many there are (for a progress bar).
    """
    counts = PullCounts()
    async with sync.engine.connect() as conn:
        patients = await ipt_rows.patients_with_courses(conn, _OPEN_STATUSES)
    types = [t for t in sync.endpoint.pull if _searchable(sync, t)]
    total, done = len(patients) * len(types), 0
    for patient_id in patients:
        try:
            async with sync.engine.connect() as conn:
                remote_patient = await remote_patient_of(sync, conn, patient_id)
        except PatientNotMatched:
            counts.unmatched_patients += 1
            metrics.count_failure(sync.name, "pull", PatientNotMatched.outcome)
            done += len(types)
            continue
        for type_ in types:
            try:
                await _pull_type(sync, type_, patient_id, remote_patient, since, counts)
            except RemoteError as error:
                counts.failed += 1
                metrics.count_failure(sync.name, "pull", error.outcome)
                async with sync.engine.begin() as conn:
                    await repo.record_endpoint_error(
                        conn, sync.name, f"pull: {error.outcome} {error}", sync.clock()
                    )
            done += 1
            if progress is not None:
                progress(done, total)
    if counts.failed == 0:
        async with sync.engine.begin() as conn:
            await repo.record_endpoint_success(conn, sync.name, "pull", sync.clock())
    return counts


def _searchable(sync: EndpointSync, type_: str) -> bool:
    if sync.capabilities is None:
        return False
    capability = sync.capabilities.types.get(type_)
    return capability is not None and "search-type" in capability.interactions


async def _pull_type(
    sync: EndpointSync,
    type_: str,
    patient_id: str,
    remote_patient: str,
    since: str | None,
    counts: PullCounts,
) -> None:
    async with sync.engine.connect() as conn:
        watermark = since or await repo.watermark_of(conn, sync.name, type_, patient_id)
    params = {
        _PATIENT_PARAM[type_]: f"Patient/{remote_patient}",
        "_count": str(sync.timing.page_size),
        "_sort": "_lastUpdated",
    }
    if type_ == "Observation":
        params["code"] = f"{LOINC}|{PHQ9_TOTAL}"
    if watermark:
        params["_lastUpdated"] = f"gt{watermark}"
    async for page in sync.remote.pages(type_, params):
        newest = await _store_page(
            sync, type_, page, (patient_id, remote_patient), watermark, counts
        )
        watermark = newest


async def _store_page(
    sync: EndpointSync,
    type_: str,
    page: list[dict[str, Any]],
    patients: tuple[str, str],
    watermark: str | None,
    counts: PullCounts,
) -> str | None:
    """Store one page and advance the watermark in the same transaction; return it."""
    patient_id, remote_patient = patients
    newest = watermark
    async with sync.engine.begin() as conn:
        store = ResourceStore(
            conn, listeners=sync.listeners, clock=sync.clock, cause=WriteCause.EHR_PULL
        )
        for remote in page:
            updated = _last_updated(remote)
            if updated and (newest is None or updated > newest):
                newest = updated
            if (
                pushed_by_us(remote)
                or not isinstance(remote.get("id"), str)
                or not concerns_patient(remote, remote_patient)
            ):
                counts.skipped += 1
                continue
            if await _store_one(sync, conn, store, remote, patient_id, remote_patient):
                counts.stored += 1
                metrics.count_synced(sync.name, "pull", str(remote["resourceType"]), "written")
            else:
                counts.skipped += 1
        if newest is not None and newest != watermark:
            await repo.set_watermark(conn, sync.name, type_, patient_id, newest, sync.clock())
    return newest


async def _store_one(
    sync: EndpointSync,
    conn: AsyncConnection,
    store: ResourceStore,
    remote: dict[str, Any],
    patient_id: str,
    remote_patient: str,
) -> bool:
    type_ = str(remote["resourceType"])
    remote_id = str(remote["id"])
    local_refs = {f"Patient/{remote_patient}": f"Patient/{patient_id}"}
    for reference in local_references(remote) - set(local_refs):
        # e.g. a score's Encounter, pulled (or pushed) before: point at our copy of it
        ref_type, ref_id = reference.split("/", 1)
        local = await repo.local_id_of(conn, sync.name, ref_type, ref_id)
        if local is not None:
            local_refs[reference] = f"{ref_type}/{local}"
    body = incoming_resource(
        remote, endpoint=sync.name, base_url=sync.endpoint.base_url, local_refs=local_refs
    )
    savepoint = await conn.begin_nested()
    try:
        result = await store.conditional_update(
            type_, pull_criteria(sync.name, type_, remote_id), body
        )
    except FhirError as error:
        # Our rules refuse it (e.g. a code our value sets do not allow): skip it, keep going.
        await savepoint.rollback()
        _log.warning("pulled %s refused by the store: %s", type_, type(error).__name__)
        metrics.count_failure(sync.name, "pull", "refused-locally")
        return False
    await savepoint.commit()
    await repo.remember_remote(
        conn,
        sync.name,
        type_,
        result.stored.id,
        repo.RemoteRef(remote_id, _version(remote), result.stored.version_id, "pull"),
        sync.clock(),
    )
    return True


def _last_updated(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _version(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("versionId") if isinstance(meta, dict) else None
    return str(value) if value is not None else None
