"""HTTP routes of the EHR sync (HTTP only; the SQL is in `ipt_core.ehr.repository`).

Reading needs the scopes of FHIR's `Endpoint` type (e.g. `system/Endpoint.rs`); retrying a
dead letter needs `Endpoint` update. Errors are OperationOutcomes, as everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, Request

from ipt_api.authz import authorize
from ipt_api.deps import ConnectionDep, PrincipalDep
from ipt_api.ehr.schemas import DeadLetterView, EndpointStatus, EndpointView
from ipt_api.principal import Principal
from ipt_core.ehr import repository as repo
from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.fhir.errors import NotAuthorized, ResourceNotFound

__all__ = ["ehr_router"]

_OUTCOME = {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/Resource"}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    403: {"description": "The token's scopes do not allow it", "content": _OUTCOME},
    404: {"description": "No such endpoint or dead letter", "content": _OUTCOME},
}
ehr_router = APIRouter(prefix="/ipt/v1/ehr", tags=["EHR sync"], responses=_ERRORS)


@ehr_router.get("/endpoints", summary="The configured EHR endpoints (no secrets)")
async def list_endpoints(request: Request, principal: PrincipalDep) -> list[EndpointView]:
    """The endpoints of `IPT_EHR_ENDPOINTS_FILE`, in file order."""
    _authorize(principal, "search")
    return [EndpointView.of(endpoint) for endpoint in _endpoints(request)]


@ehr_router.get("/endpoints/{name}/status", summary="Sync status of one EHR endpoint")
async def endpoint_status(
    name: str, request: Request, conn: ConnectionDep, principal: PrincipalDep
) -> EndpointStatus:
    """Last success per direction, lag, queue depth, dead letters, capabilities seen."""
    _authorize(principal, "read")
    _endpoint(request, name)
    row = await repo.endpoint_row(conn, name)
    counts = await repo.queue_counts(conn, name)
    return EndpointStatus.of(row, name, counts, _now(request))


@ehr_router.get("/endpoints/{name}/dead-letters", summary="Push work the EHR refused")
async def list_dead_letters(
    name: str, request: Request, conn: ConnectionDep, principal: PrincipalDep
) -> list[DeadLetterView]:
    """Dead letters newest first, each with the EHR's OperationOutcome."""
    _authorize(principal, "read")
    _endpoint(request, name)
    return [DeadLetterView.of(letter) for letter in await repo.dead_letters(conn, name)]


@ehr_router.post(
    "/endpoints/{name}/dead-letters/{letter_id}/retry",
    status_code=202,
    summary="Queue a dead letter again, due now",
)
async def retry_dead_letter(
    name: str, letter_id: int, request: Request, conn: ConnectionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The push is tried again with the resource's current content."""
    _authorize(principal, "update")
    _endpoint(request, name)
    if not await repo.retry_dead_letter(conn, name, letter_id, _now(request)):
        raise ResourceNotFound(f"Dead letter {letter_id} of EHR endpoint {name} is not known")
    return {"id": letter_id, "status": "pending"}


def _endpoints(request: Request) -> tuple[EhrEndpoint, ...]:
    endpoints: tuple[EhrEndpoint, ...] = request.app.state.ehr_endpoints
    return endpoints


def _endpoint(request: Request, name: str) -> EhrEndpoint:
    for endpoint in _endpoints(request):
        if endpoint.name == name:
            return endpoint
    raise ResourceNotFound(f"EHR endpoint {name} is not configured")


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock()
    return now


def _authorize(principal: Principal, interaction: str) -> None:
    authorize(principal, "Endpoint", interaction)
    if principal.compartment is not None:
        # EHR sync spans every patient: no patient/ token may see or steer it.
        raise NotAuthorized("EHR sync is not available with patient/ scopes")
