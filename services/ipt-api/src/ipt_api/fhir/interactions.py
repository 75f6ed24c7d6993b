"""The FHIR RESTful interactions, one route per interaction and resource type.

Routes are generated per type from the registry, so the OpenAPI document lists each type's
operations; a final catch-all answers unknown types with a 404 OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ipt_api.authz import (
    authorize,
    authorize_criteria,
    compartment_criteria,
    read_visible,
    require_writable,
    visible,
)
from ipt_api.deps import FhirBaseDep, PrincipalDep, SettingsDep, StoreDep
from ipt_api.fhir.body import read_json_object
from ipt_api.fhir.bundles import history_bundle
from ipt_api.fhir.capability import capability_statement
from ipt_api.fhir.media import check_content_type, require_fhir_accept
from ipt_api.fhir.paging import PAGE_PARAM, decode_cursor, encode_cursor, page_link
from ipt_api.fhir.patch import patch_routes
from ipt_api.fhir.preconditions import if_match_version, not_modified
from ipt_api.fhir.responses import FhirResponse, json_response, stored_response, write_response
from ipt_api.fhir.search import search_routes
from ipt_api.fhir.smart import capability_security
from ipt_api.fhir.transaction import bundle_route
from ipt_api.fhir.validate_op import validate_route
from ipt_api.openapi import fhir_body, fhir_responses
from ipt_api.outcomes import operation_outcome
from ipt_api.principal import Principal
from ipt_core.fhir.errors import (
    InvalidRequest,
    Issue,
    MethodNotAllowed,
    ResourceNotFound,
)
from ipt_core.fhir.history import history_page
from ipt_core.fhir.registry import REGISTRY
from ipt_core.instants import parse_instant

__all__ = ["fhir_router"]

_MAX_COUNT = 1000
_DEFAULT_COUNT = 50
Route = Callable[..., Awaitable[Response]]


def fhir_router() -> APIRouter:
    """Build the /fhir router: metadata, system history, each type's interactions."""
    router = APIRouter(
        prefix="/fhir",
        dependencies=[Depends(require_fhir_accept)],
        default_response_class=FhirResponse,
    )
    router.add_api_route(
        "/metadata",
        metadata,
        methods=["GET"],
        tags=["FHIR"],
        summary="CapabilityStatement of this server",
        responses=fhir_responses(_200="CapabilityStatement"),
    )
    for path in ("", "/"):  # clients post Bundles to the base with and without the slash
        router.add_api_route(
            path,
            bundle_route,
            methods=["POST"],
            tags=["FHIR"],
            summary="Process a batch or transaction Bundle",
            include_in_schema=path == "",
            openapi_extra=fhir_body("Bundle"),
            responses=fhir_responses(_200="Bundle"),
        )
    router.add_api_route(
        "/_history",
        system_history,
        methods=["GET"],
        tags=["FHIR"],
        summary="History of every resource, newest first",
        responses=fhir_responses(_200="Bundle"),
    )
    for resource_type in REGISTRY:
        _add_type_routes(router, resource_type)
    router.add_api_route(
        "/{resource_type}",
        unknown_type,
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    router.add_api_route(
        "/{resource_type}/{rest:path}",
        unknown_type,
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    return router


async def metadata(base: FhirBaseDep, settings: SettingsDep) -> Response:
    """Return the CapabilityStatement (no authentication needed, as SMART requires)."""
    return json_response(capability_statement(base, capability_security(settings)))


async def system_history(
    request: Request, store: StoreDep, principal: PrincipalDep, base: FhirBaseDep
) -> Response:
    """Return every resource's versions, newest first, paged."""
    authorize(principal, "*", "history-system")
    return await _history(request, store, principal, base, f"{base}/_history")


async def unknown_type(request: Request, resource_type: str) -> Response:
    """Answer requests no route takes: 405 on a served type's URLs, else 404."""
    if resource_type in REGISTRY or resource_type in {"metadata", "_history"}:
        raise MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
    raise ResourceNotFound(f"Resource type {resource_type!r} is not supported")


def _add_type_routes(router: APIRouter, resource_type: str) -> None:
    def add(path: str, route: Route, method: str, summary: str, **extra: Any) -> None:
        router.add_api_route(
            f"/{resource_type}{path}",
            route,
            methods=[method],
            name=f"{route.__name__}-{resource_type}",
            operation_id=f"{route.__name__}_{resource_type}",
            summary=summary,
            tags=[resource_type],
            **extra,
        )

    t = resource_type
    interactions = _TypeInteractions(t)
    search, search_post = search_routes(t)
    patch, conditional_patch = patch_routes(t)
    bundle, outcome = fhir_responses(_200="Bundle"), fhir_responses(_200="OperationOutcome")
    written, read = fhir_responses(_200=t, _201=t), fhir_responses(_200=t, _304=None)
    add("", search, "GET", f"Search {t}s (parameters in the query)", responses=bundle)
    add(
        "/_search",
        search_post,
        "POST",
        f"Search {t}s (parameters in a form body)",
        responses=bundle,
        openapi_extra=fhir_body("SearchForm"),
    )
    add(
        "/$validate",
        validate_route(t),
        "POST",
        f"Validate a {t}",
        responses=outcome,
        openapi_extra=fhir_body(t),
    )
    add(
        "",
        interactions.create,
        "POST",
        f"Create a {t}",
        responses=written,
        openapi_extra=fhir_body(t),
    )
    add(
        "",
        interactions.conditional_update,
        "PUT",
        f"Update the {t} matching the query's criteria, or create it",
        responses=written,
        openapi_extra=fhir_body(t),
    )
    add(
        "",
        interactions.conditional_delete,
        "DELETE",
        f"Delete the {t} matching the query's criteria",
        responses=outcome,
    )
    add("/_history", interactions.type_history, "GET", f"History of all {t}s", responses=bundle)
    add("/{id}", interactions.read, "GET", f"Read a {t}", responses=read)
    add(
        "/{id}",
        interactions.update,
        "PUT",
        f"Update (or create) a {t}",
        responses=written,
        openapi_extra=fhir_body(t),
    )
    add("/{id}", interactions.delete, "DELETE", f"Delete a {t}", responses=outcome)
    patched = {"responses": fhir_responses(_200=t), "openapi_extra": fhir_body("JsonPatch")}
    add("/{id}", patch, "PATCH", f"Patch a {t} with a JSON Patch", **patched)
    add("", conditional_patch, "PATCH", f"Patch the {t} matching the criteria", **patched)
    add(
        "/{id}/_history",
        interactions.instance_history,
        "GET",
        f"History of one {t}",
        responses=bundle,
    )
    add(
        "/{id}/_history/{vid}",
        interactions.vread,
        "GET",
        f"Read a version of a {t}",
        responses=fhir_responses(_200=t),
    )


class _TypeInteractions:
    """The interactions of one resource type, as route functions bound to that type."""

    def __init__(self, resource_type: str) -> None:
        self.type = resource_type
        t = resource_type

        async def create(
            request: Request,
            store: StoreDep,
            principal: PrincipalDep,
            base: FhirBaseDep,
            settings: SettingsDep,
        ) -> Response:
            authorize(principal, t, "create")
            if_none_exist = request.headers.get("if-none-exist")
            if if_none_exist:
                authorize_criteria(principal, t, if_none_exist)
                if_none_exist = compartment_criteria(principal, t, if_none_exist)
            body = await _resource_body(request, settings)
            result = await store.create(t, body, if_none_exist=if_none_exist)
            return write_response(request, result.stored, 201 if result.changed else 200, base)

        async def read(
            id: str, request: Request, store: StoreDep, principal: PrincipalDep
        ) -> Response:
            authorize(principal, t, "read", id_=id)
            stored = await read_visible(store, principal, t, id)
            if not_modified(request, stored):
                return Response(status_code=304, headers={"ETag": stored.etag})
            return stored_response(stored)

        async def vread(id: str, vid: str, store: StoreDep, principal: PrincipalDep) -> Response:
            authorize(principal, t, "vread", id_=id)
            return stored_response(await read_visible(store, principal, t, id, vid))

        async def update(
            id: str,
            request: Request,
            store: StoreDep,
            principal: PrincipalDep,
            base: FhirBaseDep,
            settings: SettingsDep,
        ) -> Response:
            authorize(principal, t, "update", id_=id)
            await require_writable(store, principal, t, id)
            body = await _resource_body(request, settings)
            result = await store.update(t, id, body, if_match=if_match_version(request))
            return write_response(request, result.stored, 201 if result.created else 200, base)

        async def conditional_update(
            request: Request,
            store: StoreDep,
            principal: PrincipalDep,
            base: FhirBaseDep,
            settings: SettingsDep,
        ) -> Response:
            authorize(principal, t, "update")
            criteria = _criteria(request)
            authorize_criteria(principal, t, criteria)
            criteria = compartment_criteria(principal, t, criteria)
            body = await _resource_body(request, settings)
            result = await store.conditional_update(
                t, criteria, body, if_match=if_match_version(request)
            )
            return write_response(request, result.stored, 201 if result.created else 200, base)

        async def delete(id: str, store: StoreDep, principal: PrincipalDep) -> Response:
            authorize(principal, t, "delete", id_=id)
            await require_writable(store, principal, t, id)
            deleted = await store.delete(t, id)
            return _deleted_response(t, id if deleted else None)

        async def conditional_delete(
            request: Request, store: StoreDep, principal: PrincipalDep
        ) -> Response:
            authorize(principal, t, "delete")
            criteria = _criteria(request)
            authorize_criteria(principal, t, criteria)
            criteria = compartment_criteria(principal, t, criteria)
            deleted = await store.conditional_delete(t, criteria)
            return _deleted_response(t, deleted.id if deleted else None)

        async def type_history(
            request: Request, store: StoreDep, principal: PrincipalDep, base: FhirBaseDep
        ) -> Response:
            authorize(principal, t, "history-type")
            return await _history(request, store, principal, base, f"{base}/{t}/_history", t)

        async def instance_history(
            id: str, request: Request, store: StoreDep, principal: PrincipalDep, base: FhirBaseDep
        ) -> Response:
            authorize(principal, t, "history", id_=id)
            if not visible(principal, await store.read_any(t, id)):
                raise ResourceNotFound(f"{t}/{id} is not known")
            url = f"{base}/{t}/{id}/_history"
            return await _history(request, store, principal, base, url, t, id)

        self.create, self.read, self.vread, self.update = create, read, vread, update
        self.conditional_update, self.delete = conditional_update, delete
        self.conditional_delete, self.type_history = conditional_delete, type_history
        self.instance_history = instance_history


async def _resource_body(request: Request, settings: SettingsDep) -> dict[str, Any]:
    check_content_type(request)
    return await read_json_object(request, max_depth=settings.max_json_depth)


def _criteria(request: Request) -> str:
    criteria = [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]
    if not criteria:
        raise InvalidRequest("A conditional interaction needs search criteria in the query")
    return str(request.url.query)


def _deleted_response(resource_type: str, id_: str | None) -> Response:
    message = f"{resource_type}/{id_} deleted" if id_ else "Nothing to delete: no such resource"
    outcome = operation_outcome([Issue("informational", message, severity="information")])
    return json_response(outcome, 200)


async def _history(
    request: Request,
    store: StoreDep,
    principal: Principal,
    base: str,
    url: str,
    resource_type: str | None = None,
    id_: str | None = None,
) -> Response:
    params = request.query_params
    count = _count(params.get("_count"))
    since = _since(params.get("_since"))
    token = params.get(PAGE_PARAM)
    before = decode_cursor(token, keys=frozenset({"seq"}))["seq"] if token else None
    if before is not None and not isinstance(before, int):
        raise InvalidRequest("The page token is not valid", expression=(PAGE_PARAM,))
    page = await history_page(
        store.conn,
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
    bundle = history_bundle(entries, base=base, self_url=page_link(request, url), next_url=next_url)
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
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise InvalidRequest(
            f"_since {value!r} is not a FHIR instant", expression=("_since",)
        ) from None
