"""HTTP routes of course status and dashboards (HTTP only; the work is in the services)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from ipt_api.authz import authorize
from ipt_api.deps import ConnectionDep, PrincipalDep, PublicBaseDep
from ipt_api.fhir.paging import decode_cursor, encode_cursor
from ipt_api.fhir.responses import FhirResponse, json_response
from ipt_api.openapi import fhir_responses
from ipt_api.status.access import DashboardFilters, OperatedCourse, ReadCourse
from ipt_api.status.dashboard import WorklistKind, summary, worklist
from ipt_api.status.parameters import status_parameters
from ipt_api.status.service import course_status
from ipt_core.fhir.errors import InvalidRequest
from ipt_core.instants import parse_instant

__all__ = ["fhir_status_router", "status_router"]

status_router = APIRouter(prefix="/ipt/v1", tags=["Course status"])
fhir_status_router = APIRouter(
    prefix="/fhir", tags=["CarePlan"], default_response_class=FhirResponse
)
AsOf = Annotated[
    str | None,
    Query(
        description="An instant: the status computed fresh then", examples=["2026-03-04T12:00:00Z"]
    ),
]


@status_router.get(
    "/courses/{course_id}/status", summary="A course's status (docs/status-rules.md)"
)
async def read_status(
    course_id: ReadCourse, conn: ConnectionDep, request: Request, as_of: AsOf = None
) -> dict[str, Any]:
    """Return the stored status, or the status as of an instant (`?as_of=`)."""
    return await course_status(conn, course_id, as_of=_instant(as_of), now=_now(request))


@fhir_status_router.get(
    "/CarePlan/{course_id}/$ipt-status",
    summary="A course's status as a FHIR Parameters resource",
    responses=fhir_responses(_200="Parameters"),
)
async def read_status_parameters(
    course_id: OperatedCourse, conn: ConnectionDep, request: Request, as_of: AsOf = None
) -> Response:
    """The same status as `/ipt/v1/courses/{id}/status`, as `Parameters`."""
    status = await course_status(conn, course_id, as_of=_instant(as_of), now=_now(request))
    return json_response(status_parameters(status))


@status_router.get(
    "/dashboard/summary",
    tags=["Dashboards"],
    summary="Counts by phase and engagement, attendance and outcome rates",
)
async def dashboard_summary(
    conn: ConnectionDep, principal: PrincipalDep, filters: DashboardFilters
) -> dict[str, Any]:
    """Aggregate the stored statuses, optionally of one therapist or organization."""
    authorize(principal, "CarePlan", "search", names=["therapist", "organization"])
    return await summary(
        conn,
        therapist=filters.therapist,
        organization=filters.organization,
        patient=principal.compartment,
    )


@status_router.get(
    "/dashboard/worklist",
    tags=["Dashboards"],
    summary="Courses needing action, oldest first, paged",
)
async def dashboard_worklist(
    request: Request,
    conn: ConnectionDep,
    base: PublicBaseDep,
    principal: PrincipalDep,
    kind: WorklistKind,
    filters: DashboardFilters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    page: str | None = None,
) -> dict[str, Any]:
    """List the courses of one kind; `next` carries an opaque cursor."""
    authorize(principal, "CarePlan", "search", names=["kind", "therapist", "organization"])
    after = None
    if page is not None:
        position = decode_cursor(page, keys=frozenset({"sort", "id"}))
        after = (str(position["sort"]), str(position["id"]))
    items = await worklist(
        conn,
        kind,
        therapist=filters.therapist,
        organization=filters.organization,
        patient=principal.compartment,
        after=after,
        limit=limit,
    )
    url = base + request.url.path
    next_url = None
    if len(items) == limit:
        cursor = encode_cursor({"sort": items[-1]["sort"], "id": items[-1]["course_id"]})
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        next_url = f"{url}?{urlencode([*params, ('page', cursor)])}"
    return {
        "kind": kind,
        "items": [{k: v for k, v in i.items() if k != "sort"} for i in items],
        "next": next_url,
    }


def _instant(value: str | None) -> datetime | None:
    try:
        return None if value is None else parse_instant(value)
    except ValueError:
        raise InvalidRequest(f"as_of {value!r} is not an instant", expression=("as_of",)) from None


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)
