"""The FHIR RESTful interactions: one route per interaction, the resource type a parameter.

Every /fhir route is a `FhirOperation` (ipt_api/fhir/routes.py) taking the one context
dependency (ipt_api/fhir/context.py); the OpenAPI document still lists each type's
operations. A path no operation takes answers 404 for an unknown type, 405 for a served one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from ipt_api.authz import (
    authorize,
    authorize_criteria,
    compartment_criteria,
    read_visible,
    require_writable,
    visible,
)
from ipt_api.fhir.body import read_json_object
from ipt_api.fhir.bundles import history_bundle
from ipt_api.fhir.capability import capability_statement
from ipt_api.fhir.context import FhirContext, FhirContextDep, check_type
from ipt_api.fhir.media import check_content_type
from ipt_api.fhir.paging import PAGE_PARAM, decode_cursor, encode_cursor, page_link
from ipt_api.fhir.patch import PATCH_OPERATIONS
from ipt_api.fhir.preconditions import if_match_version, not_modified
from ipt_api.fhir.responses import FhirResponse, json_response, stored_response, write_response
from ipt_api.fhir.routes import FhirOperation, add_operations, documented_routes, fhir_api_router
from ipt_api.fhir.search import SEARCH_OPERATIONS
from ipt_api.fhir.smart import capability_security
from ipt_api.fhir.transaction import bundle_route
from ipt_api.fhir.validate_op import VALIDATE_OPERATION
from ipt_api.outcomes import operation_outcome
from ipt_api.principal import Principal
from ipt_core.fhir.errors import InvalidRequest, Issue, MethodNotAllowed, ResourceNotFound
from ipt_core.fhir.history import history_page
from ipt_core.fhir.registry import REGISTRY
from ipt_core.instants import parse_instant

__all__ = ["fhir_documented_routes", "fhir_router"]

_MAX_BASES = 16
_MAX_COUNT = 1000
_DEFAULT_COUNT = 50


def fhir_router() -> APIRouter:
    """Build the /fhir router: metadata, system history, Bundles, each interaction once."""
    router = fhir_api_router()
    add_operations(router, _OPERATIONS)
    for path in ("/{resource_type}", "/{resource_type}/{rest:path}"):
        router.add_api_route(
            path,
            not_served,
            methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            include_in_schema=False,
        )
    return router


def fhir_documented_routes() -> list[Any]:
    """The per-type operations, one route per served type, for the OpenAPI document."""
    return documented_routes(_OPERATIONS, REGISTRY)


async def metadata(ctx: FhirContextDep) -> Response:
    """Return the CapabilityStatement (no authentication needed, as SMART requires)."""
    # It depends only on the base URL and the settings: rendered once per base, per app.
    rendered: dict[str, bytes] = ctx.request.app.state.capabilities
    body = rendered.get(ctx.base)
    if body is None:
        statement = capability_statement(ctx.base, capability_security(ctx.settings))
        body = rendered[ctx.base] = orjson.dumps(statement)
        if len(rendered) > _MAX_BASES:  # Hosts are allowed ones, but keep the map bounded
            rendered.pop(next(iter(rendered)))
    return FhirResponse(body)


async def system_history(ctx: FhirContextDep) -> Response:
    """Return every resource's versions, newest first, paged."""
    authorize(await ctx.principal(), "*", "history-system")
    return await _history(ctx, f"{ctx.base}/_history")


async def not_served(request: Request, resource_type: str) -> Response:
    """Answer requests no route takes: 405 on a served type's URLs, else 404."""
    check_type(request, resource_type)
    raise MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")


async def create(ctx: FhirContextDep) -> Response:
    """Create a resource (conditionally with `If-None-Exist`)."""
    t, request = ctx.type, ctx.request
    if_none_exist = request.headers.get("if-none-exist")
    # A plain create is the route's one write, atomic on its own: often one statement,
    # without a BEGIN and a COMMIT (ResourceStore.create). A conditional one also searches,
    # and that search's audit record belongs in the create's transaction.
    store, principal = await ctx.writer(atomic_write=not if_none_exist)
    authorize(principal, t, "create")
    if if_none_exist:
        authorize_criteria(principal, t, if_none_exist)
        if_none_exist = compartment_criteria(principal, t, if_none_exist)
    body = await _resource_body(ctx)
    result = await store.create(t, body, if_none_exist=if_none_exist)
    return write_response(request, result.stored, 201 if result.changed else 200, ctx.base)


async def read(ctx: FhirContextDep, id: str) -> Response:
    """Read the current version (304 when the client's copy is current)."""
    principal, t = await ctx.principal(), ctx.type
    authorize(principal, t, "read", id_=id)
    stored = await read_visible(await ctx.reads(), principal, t, id)
    if not_modified(ctx.request, stored):
        return Response(status_code=304, headers={"ETag": stored.etag})
    return stored_response(stored)


async def vread(ctx: FhirContextDep, id: str, vid: str) -> Response:
    """Read one version."""
    principal, t = await ctx.principal(), ctx.type
    authorize(principal, t, "vread", id_=id)
    return stored_response(await read_visible(await ctx.reads(), principal, t, id, vid))


async def update(ctx: FhirContextDep, id: str) -> Response:
    """Update (or create) a resource by id, honouring `If-Match`."""
    store, principal = await ctx.writer()
    t, request = ctx.type, ctx.request
    authorize(principal, t, "update", id_=id)
    await require_writable(store, principal, t, id)
    body = await _resource_body(ctx)
    result = await store.update(t, id, body, if_match=if_match_version(request))
    return write_response(request, result.stored, 201 if result.created else 200, ctx.base)


async def conditional_update(ctx: FhirContextDep) -> Response:
    """Update the one resource the query's criteria match, or create it."""
    store, principal = await ctx.writer()
    t, request = ctx.type, ctx.request
    authorize(principal, t, "update")
    criteria = _criteria(ctx, principal)
    body = await _resource_body(ctx)
    result = await store.conditional_update(t, criteria, body, if_match=if_match_version(request))
    return write_response(request, result.stored, 201 if result.created else 200, ctx.base)


async def delete(ctx: FhirContextDep, id: str) -> Response:
    """Delete a resource by id."""
    store, principal = await ctx.writer()
    authorize(principal, ctx.type, "delete", id_=id)
    await require_writable(store, principal, ctx.type, id)
    deleted = await store.delete(ctx.type, id)
    return _deleted_response(ctx.type, id if deleted else None)


async def conditional_delete(ctx: FhirContextDep) -> Response:
    """Delete the one resource the query's criteria match."""
    store, principal = await ctx.writer()
    authorize(principal, ctx.type, "delete")
    deleted = await store.conditional_delete(ctx.type, _criteria(ctx, principal))
    return _deleted_response(ctx.type, deleted.id if deleted else None)


async def type_history(ctx: FhirContextDep) -> Response:
    """Return the versions of every resource of a type, newest first, paged."""
    authorize(await ctx.principal(), ctx.type, "history-type")
    return await _history(ctx, f"{ctx.base}/{ctx.type}/_history", ctx.type)


async def instance_history(ctx: FhirContextDep, id: str) -> Response:
    """Return the versions of one resource, newest first, paged."""
    principal, t = await ctx.principal(), ctx.type
    authorize(principal, t, "history", id_=id)
    if not visible(principal, await (await ctx.store()).read_any(t, id)):
        raise ResourceNotFound(f"{t}/{id} is not known")
    return await _history(ctx, f"{ctx.base}/{t}/{id}/_history", t, id)


_BUNDLE, _OUTCOME = {"_200": "Bundle"}, {"_200": "OperationOutcome"}
_WRITTEN = {"_200": "{t}", "_201": "{t}"}
_OPERATIONS: tuple[FhirOperation, ...] = (
    FhirOperation(
        "GET",
        "/metadata",
        metadata,
        "CapabilityStatement of this server",
        {"_200": "CapabilityStatement"},
    ),
    # Clients post Bundles to the base with and without the slash.
    FhirOperation(
        "POST", "", bundle_route, "Process a batch or transaction Bundle", _BUNDLE, body="Bundle"
    ),
    FhirOperation("POST", "/", bundle_route, documented=False),
    FhirOperation(
        "GET", "/_history", system_history, "History of every resource, newest first", _BUNDLE
    ),
    *SEARCH_OPERATIONS,
    VALIDATE_OPERATION,
    FhirOperation("POST", "/{type}", create, "Create a {t}", _WRITTEN, body="{t}", tags=("{t}",)),
    FhirOperation(
        "PUT",
        "/{type}",
        conditional_update,
        "Update the {t} matching the query's criteria, or create it",
        _WRITTEN,
        body="{t}",
        tags=("{t}",),
    ),
    FhirOperation(
        "DELETE",
        "/{type}",
        conditional_delete,
        "Delete the {t} matching the query's criteria",
        _OUTCOME,
        tags=("{t}",),
    ),
    FhirOperation(
        "GET", "/{type}/_history", type_history, "History of all {t}s", _BUNDLE, tags=("{t}",)
    ),
    FhirOperation(
        "GET", "/{type}/{id}", read, "Read a {t}", {"_200": "{t}", "_304": None}, tags=("{t}",)
    ),
    FhirOperation(
        "PUT",
        "/{type}/{id}",
        update,
        "Update (or create) a {t}",
        _WRITTEN,
        body="{t}",
        tags=("{t}",),
    ),
    FhirOperation("DELETE", "/{type}/{id}", delete, "Delete a {t}", _OUTCOME, tags=("{t}",)),
    *PATCH_OPERATIONS,
    FhirOperation(
        "GET",
        "/{type}/{id}/_history",
        instance_history,
        "History of one {t}",
        _BUNDLE,
        tags=("{t}",),
    ),
    FhirOperation(
        "GET",
        "/{type}/{id}/_history/{vid}",
        vread,
        "Read a version of a {t}",
        {"_200": "{t}"},
        tags=("{t}",),
    ),
)


async def _resource_body(ctx: FhirContext) -> dict[str, Any]:
    check_content_type(ctx.request)
    return await read_json_object(ctx.request, max_depth=ctx.settings.max_json_depth)


def _criteria(ctx: FhirContext, principal: Principal) -> str:
    """The query's criteria, checked against the caller's scopes and compartment."""
    request = ctx.request
    criteria = [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]
    if not criteria:
        raise InvalidRequest("A conditional interaction needs search criteria in the query")
    authorize_criteria(principal, ctx.type, str(request.url.query))
    return compartment_criteria(principal, ctx.type, str(request.url.query))


def _deleted_response(resource_type: str, id_: str | None) -> Response:
    message = f"{resource_type}/{id_} deleted" if id_ else "Nothing to delete: no such resource"
    outcome = operation_outcome([Issue("informational", message, severity="information")])
    return json_response(outcome, 200)


async def _history(
    ctx: FhirContext, url: str, resource_type: str | None = None, id_: str | None = None
) -> Response:
    request, principal = ctx.request, await ctx.principal()
    params = request.query_params
    count = _count(params.get("_count"))
    since = _since(params.get("_since"))
    token = params.get(PAGE_PARAM)
    before = decode_cursor(token, keys=frozenset({"seq"}))["seq"] if token else None
    if before is not None and not isinstance(before, int):
        raise InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,))
    page = await history_page(
        (await ctx.store()).conn,
        resource_type=resource_type,
        id_=id_,
        since=since,
        before_seq=before,
        count=count,
    )
    next_url = (
        page_link(request, url, encode_cursor({"seq": page.next_cursor}))
        if page.next_cursor is not None
        else None
    )
    # Versions the caller may not see are left out (a page can come out short: paging by the
    # version sequence stays correct).
    entries = [
        e
        for e in page.entries
        if principal.may(e.stored.resource_type, "history") and visible(principal, e.stored)
    ]
    bundle = history_bundle(
        entries, base=ctx.base, self_url=page_link(request, url), next_url=next_url
    )
    return json_response(bundle)


def _count(value: str | None) -> int:
    if value is None:
        return _DEFAULT_COUNT
    if not value.isdigit():
        raise InvalidRequest(
            f"_count must be a whole number, not {value!r}", expression=("_count",)
        )
    return min(int(value), _MAX_COUNT)


def _since(value: str | None) -> datetime | None:
    try:
        return None if value is None else parse_instant(value)
    except ValueError:
        message = f"_since {value!r} is not a FHIR instant"
        raise InvalidRequest(message, expression=("_since",)) from None
