"""Patients are matched by identifier, never guessed, and never created in the EHR.

Our Patient's identifier in the endpoint's `patient_identifier_system` must match exactly
one EHR Patient; the match is remembered (`ehr_remote`, direction `match`).
"""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr import repository as repo
from ipt_core.ehr.errors import PatientNotMatched
from ipt_core.fhir.errors import FhirError
from ipt_core.fhir.store import ResourceStore
from ipt_worker.ehr.context import EndpointSync

__all__ = ["local_patient_of", "remote_patient_of"]


async def remote_patient_of(sync: EndpointSync, conn: AsyncConnection, patient_id: str) -> str:
    """The EHR's id of our Patient `patient_id`.

    Raises:
        PatientNotMatched: our Patient has no identifier in the endpoint's system, or no or
            several EHR Patients carry it.
    """
    known = await repo.remote_of(conn, sync.name, "Patient", patient_id)
    if known is not None:
        return known.remote_id
    system = sync.endpoint.patient_identifier_system
    try:
        stored = await ResourceStore(conn).read("Patient", patient_id)
        patient = orjson.loads(stored.content or "{}")
    except FhirError:
        raise PatientNotMatched("the patient is not in the service") from None
    values = [
        i.get("value")
        for i in patient.get("identifier", [])
        if i.get("system") == system and isinstance(i.get("value"), str)
    ]
    if not values:
        raise PatientNotMatched(f"the patient has no identifier in system {system}")
    found = await sync.remote.search("Patient", {"identifier": f"{system}|{values[0]}"})
    if len(found) != 1 or not isinstance(found[0].get("id"), str):
        raise PatientNotMatched(
            f"{len(found)} EHR patients carry the patient's identifier in system {system}"
        )
    remote_id = str(found[0]["id"])
    async with sync.engine.begin() as write:
        await repo.remember_remote(
            write,
            sync.name,
            "Patient",
            patient_id,
            repo.RemoteRef(remote_id, None, None, "match"),
            sync.clock(),
        )
    return remote_id


async def local_patient_of(sync: EndpointSync, conn: AsyncConnection, remote_id: str) -> str | None:
    """Our Patient matched to the EHR's `remote_id`, if any."""
    return await repo.local_id_of(conn, sync.name, "Patient", remote_id)
