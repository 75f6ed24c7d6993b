"""`/fhir/AuditEvent`: read and search the audit trail; nobody can change it through the API.

Granted only by an explicit AuditEvent scope (`system/AuditEvent.rs`, `user/AuditEvent.read`…):
`*` scopes do not include it and `patient/` scopes never reach it. Writes answer 405.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ipt_api.audit.search_params import audit_filter
from ipt_api.authz import authorize
from ipt_api.deps import ConnectionDep, FhirBaseDep, PrincipalDep
from ipt_api.fhir.paging import PAGE_PARAM, decode_cursor, encode_cursor, page_link
from ipt_api.fhir.responses import FhirResponse, json_response
from ipt_api.principal import AUDIT_TYPE
from ipt_core.audit import read_record, search_records
from ipt_core.fhir.errors import MethodNotAllowed, ResourceNotFound

__all__ = ["audit_router"]

_SEQ = frozenset({"seq"})


def audit_router() -> APIRouter:
    """The AuditEvent routes (mounted before the FHIR catch-all)."""
    router = APIRouter(prefix="/fhir", tags=[AUDIT_TYPE], default_response_class=FhirResponse)
    router.add_api_route(
        "/AuditEvent", search_audit_events, methods=["GET"], summary="Search the audit trail"
    )
    router.add_api_route(
        "/AuditEvent/{id}", read_audit_event, methods=["GET"], summary="Read an AuditEvent"
    )
    for path in ("/AuditEvent", "/AuditEvent/{rest:path}"):
        router.add_api_route(
            path,
            refuse_change,
            methods=["POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )
    return router


async def read_audit_event(id: str, conn: ConnectionDep, principal: PrincipalDep) -> Response:
    """Return one AuditEvent."""
    authorize(principal, AUDIT_TYPE, "read", id_=id)
    content = await read_record(conn, id)
    if content is None:
        raise ResourceNotFound(f"AuditEvent/{id} is not known")
    return json_response(content)


async def search_audit_events(
    request: Request,
    conn: ConnectionDep,
    principal: PrincipalDep,
    base: FhirBaseDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 50,
    page: Annotated[str | None, Query(alias=PAGE_PARAM)] = None,
) -> Response:
    """Search AuditEvents, newest first: date, agent, entity, patient, subtype, action, outcome."""
    params = request.query_params.multi_items()
    authorize(principal, AUDIT_TYPE, "search", names=[name for name, _ in params])
    where = audit_filter(params)
    criteria = [(k, v) for k, v in params if k != PAGE_PARAM]
    binding = "&".join(f"{k}={v}" for k, v in sorted(criteria))
    before = decode_cursor(page, keys=_SEQ, bound_to=binding)["seq"] if page else None
    rows = await search_records(conn, where, limit=count + 1, before_seq=before)
    url = f"{base}/AuditEvent"
    links = [{"relation": "self", "url": page_link(request, url)}]
    if len(rows) > count:
        token = encode_cursor({"seq": rows[count - 1][0]}, bound_to=binding)
        links.append({"relation": "next", "url": page_link(request, url, token)})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    entries = [
        {"fullUrl": f"{url}/{content['id']}", "resource": content, "search": {"mode": "match"}}
        for _, content in rows[:count]
    ]
    if entries:
        bundle["entry"] = entries
    return json_response(bundle)


async def refuse_change(request: Request) -> Response:
    """AuditEvents are written by the server only: every change is 405."""
    raise MethodNotAllowed(f"AuditEvents cannot be changed through the API ({request.method})")
