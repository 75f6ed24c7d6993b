"""Routes of FHIR Bulk Data `$export` (HL7 Bulk Data Access IG v2, asynchronous pattern).

    GET|POST /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export
        -> 202, Content-Location: the status URL (Prefer: respond-async required)
    GET    /fhir/$export-status/{id}   -> 202 + X-Progress + Retry-After, then 200 manifest
    DELETE /fhir/$export-status/{id}   -> 202; the files are gone
    GET    /fhir/$export-file/{id}/{type}.ndjson -> the NDJSON, streamed chunk by chunk

The export itself runs in the worker (ipt_worker.exports). Files live in PostgreSQL
(`bulk_export_chunk`), so every API replica serves them. docs/analytics.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.bulk.access import authorize_export, export_owner
from ipt_api.bulk.kickoff import export_parameters, require_respond_async
from ipt_api.deps import ConnectionDep, FhirBaseDep, PrincipalDep, SettingsDep
from ipt_api.fhir.responses import FhirResponse
from ipt_api.outcomes import operation_outcome
from ipt_core.bulk import (
    ExportJob,
    ExportRequest,
    create_export,
    delete_export,
    find_export,
    group_patients,
    has_rows,
    output_files,
    read_chunk,
)
from ipt_core.fhir.errors import Issue, ResourceNotFound
from ipt_core.instants import format_instant

__all__ = ["bulk_router"]

bulk_router = APIRouter(prefix="/fhir", tags=["Bulk Data"], default_response_class=FhirResponse)
NDJSON: Final = "application/fhir+ndjson"
_KICK_OFF: Final[dict[int | str, dict[str, Any]]] = {
    202: {"description": "Accepted; poll the Content-Location URL"}
}


async def export_system(
    request: Request, conn: ConnectionDep, principal: PrincipalDep, base: FhirBaseDep
) -> Response:
    """System-level export: every resource of the requested types."""
    return await _kick_off(request, conn, principal, base, "system", None)


async def export_patients(
    request: Request, conn: ConnectionDep, principal: PrincipalDep, base: FhirBaseDep
) -> Response:
    """Patient-level export: the Patient compartments of every patient."""
    return await _kick_off(request, conn, principal, base, "patient", None)


async def export_group(
    group_id: str,
    request: Request,
    conn: ConnectionDep,
    principal: PrincipalDep,
    base: FhirBaseDep,
) -> Response:
    """Group-level export; groups are `ipt-therapist-<id>` and `ipt-organization-<id>`."""
    return await _kick_off(request, conn, principal, base, "group", group_id)


_KICK_OFFS: Final = (
    ("/$export", export_system, "export", "Export all data"),
    ("/Patient/$export", export_patients, "export-patients", "Export the data of all patients"),
    (
        "/Group/{group_id}/$export",
        export_group,
        "export-group",
        "Export the data of a therapist's or organization's IPT patients",
    ),
)
for _path, _endpoint, _name, _summary in _KICK_OFFS:
    for _method in ("GET", "POST"):
        bulk_router.add_api_route(
            _path,
            _endpoint,
            methods=[_method],
            name=f"{_name}-{_method.lower()}",
            operation_id=f"{_name}-{_method.lower()}",
            summary=_summary,
            responses=_KICK_OFF,
        )


@bulk_router.get(
    "/$export-status/{export_id}",
    summary="Poll an export: 202 while running, then the manifest",
    responses={202: {"description": "In progress (X-Progress, Retry-After)"}},
)
async def export_status(
    export_id: str,
    request: Request,
    conn: ConnectionDep,
    principal: PrincipalDep,
    base: FhirBaseDep,
    settings: SettingsDep,
) -> Response:
    """The export's progress, its manifest when complete, or its error."""
    job = await _own_export(conn, export_id, principal, request)
    if job.state in {"queued", "running"}:
        progress = f"{job.exported} resources exported ({job.type_index}/{len(job.types)} types)"
        return Response(
            status_code=202,
            headers={"X-Progress": progress, "Retry-After": str(settings.export_retry_after_s)},
        )
    if job.state == "failed":
        outcome = operation_outcome([Issue("exception", "The export failed; start a new one")])
        return FhirResponse(_json(outcome), status_code=500)
    files = await output_files(conn, job.id)
    manifest = {
        "transactionTime": format_instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": f.resource_type,
                "url": _file_url(base, job.id, f.resource_type),
                "count": f.count,
            }
            for f in files
        ],
        "error": [],
    }
    headers = {"Expires": _http_date(job.expires_at)} if job.expires_at else {}
    return Response(_json(manifest), media_type="application/json", headers=headers)


@bulk_router.delete(
    "/$export-status/{export_id}",
    status_code=202,
    summary="Cancel an export or delete its files",
    responses={202: {"description": "Deleted"}},
)
async def export_delete(export_id: str, conn: ConnectionDep, principal: PrincipalDep) -> Response:
    """Delete the caller's export and its files (202), or 404."""
    if not await delete_export(conn, export_id, owner=export_owner(principal)):
        raise ResourceNotFound("No such export")
    return Response(status_code=202)


@bulk_router.get(
    "/$export-file/{export_id}/{resource_type}.ndjson",
    summary="Download an output file (NDJSON)",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}},
)
async def export_file(
    export_id: str,
    resource_type: str,
    request: Request,
    conn: ConnectionDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    """Stream one file of a completed export, one stored chunk at a time."""
    job = await _own_export(conn, export_id, principal, request)
    if job.state != "completed" or resource_type not in job.types:
        raise ResourceNotFound("No such export file")
    engine: AsyncEngine = request.app.state.database.engine
    return StreamingResponse(_chunks(engine, job.id, resource_type), media_type=NDJSON)


async def _kick_off(
    request: Request,
    conn: Any,
    principal: Any,
    base: str,
    level: str,
    group_id: str | None,
) -> Response:
    require_respond_async(request)
    parameters = await export_parameters(request, level)
    authorize_export(principal, parameters.types)  # before the group is even looked up
    if group_id is not None:
        await _require_group(conn, group_id)
    now = _now(request)
    export_id = await create_export(
        conn,
        ExportRequest(
            owner=export_owner(principal),
            level=level,
            types=parameters.types,
            request_url=_request_url(request, base),
            group_id=group_id,
            since=parameters.since,
            type_filters=parameters.filters,
        ),
        now,
    )
    return Response(
        status_code=202, headers={"Content-Location": f"{base}/$export-status/{export_id}"}
    )


async def _require_group(conn: Any, group_id: str) -> None:
    members = group_patients(group_id)
    if members is None or not await has_rows(conn, members):
        raise ResourceNotFound(
            "No such Group: groups are ipt-therapist-<Practitioner id> or "
            "ipt-organization-<Organization id> with at least one IPT course"
        )


async def _own_export(conn: Any, export_id: str, principal: Any, request: Request) -> ExportJob:
    job = await find_export(conn, export_id, owner=export_owner(principal), now=_now(request))
    if job is None:  # also another client's export: its existence is not revealed
        raise ResourceNotFound("No such export")
    return job


async def _chunks(engine: AsyncEngine, export_id: str, resource_type: str) -> AsyncIterator[bytes]:
    after = -1
    while True:
        # A short connection per chunk: a slow download holds no connection between chunks.
        async with engine.connect() as conn:
            found = await read_chunk(conn, export_id, resource_type, after_chunk=after)
        if found is None:
            return
        after, data = found
        yield data


def _file_url(base: str, export_id: str, resource_type: str) -> str:
    return f"{base}/$export-file/{export_id}/{resource_type}.ndjson"


def _request_url(request: Request, base: str) -> str:
    path = request.url.path.removeprefix("/fhir")
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{path}{query}"


def _http_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)
