"""PATCH with JSON Patch (RFC 6902): `PATCH /fhir/{type}/{id}` and `PATCH /fhir/{type}?criteria`.

The patch is applied to the current version under its row lock (ResourceStore.patch), so
concurrent patches never lose an update; `If-Match` is honoured and the result is validated
like any write. A patch that cannot be applied (a failed `test`, a missing path) is a 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import jsonpatch
from fastapi import Request, Response

from ipt_api.authz import (
    authorize,
    authorize_criteria,
    compartment_criteria,
    require_writable,
)
from ipt_api.deps import FhirBaseDep, PrincipalDep, SettingsDep, StoreDep
from ipt_api.fhir.media import check_content_type
from ipt_api.fhir.preconditions import if_match_version
from ipt_api.fhir.responses import write_response
from ipt_api.json_input import parse_json
from ipt_core.fhir.errors import FhirError, InvalidRequest
from ipt_core.fhir.store import ResourceChange

__all__ = ["JSON_PATCH", "PatchFailed", "json_patch", "patch_routes"]

JSON_PATCH = "application/json-patch+json"
Route = Callable[..., Awaitable[Response]]


class PatchFailed(FhirError):
    """The patch document is well formed but cannot be applied to the current version."""

    status, code = 422, "processing"


def json_patch(operations: Any) -> ResourceChange:
    """Return the change that applies the JSON Patch `operations` to a resource.

    Raises:
        InvalidRequest: when `operations` is not a JSON Patch document.
    """
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise InvalidRequest("A JSON Patch document is an array of operation objects")
    try:
        patch = jsonpatch.JsonPatch(operations)
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException) as error:
        raise InvalidRequest(f"Invalid JSON Patch: {error}") from None

    def apply(current: dict[str, Any]) -> dict[str, Any]:
        try:
            patched = patch.apply(current)
        except jsonpatch.InvalidJsonPatch as error:
            raise InvalidRequest(f"Invalid JSON Patch: {error}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise PatchFailed(f"The patch cannot be applied: {error}") from None
        if not isinstance(patched, dict):
            raise PatchFailed("The patch must leave a resource (a JSON object)")
        return patched

    return apply


def patch_routes(resource_type: str) -> tuple[Route, Route]:
    """Return the instance and conditional PATCH routes of `resource_type`."""

    async def patch(
        id: str,
        request: Request,
        store: StoreDep,
        principal: PrincipalDep,
        base: FhirBaseDep,
        settings: SettingsDep,
    ) -> Response:
        authorize(principal, resource_type, "patch", id_=id)
        await require_writable(store, principal, resource_type, id)
        change = await _patch_body(request, settings)
        result = await store.patch(resource_type, id, change, if_match=if_match_version(request))
        return write_response(request, result.stored, 200, base)

    async def conditional_patch(
        request: Request,
        store: StoreDep,
        principal: PrincipalDep,
        base: FhirBaseDep,
        settings: SettingsDep,
    ) -> Response:
        authorize(principal, resource_type, "patch")
        if not request.url.query:
            raise InvalidRequest("A conditional patch needs search criteria in the query")
        authorize_criteria(principal, resource_type, str(request.url.query))
        criteria = compartment_criteria(principal, resource_type, str(request.url.query))
        change = await _patch_body(request, settings)
        result = await store.conditional_patch(
            resource_type, criteria, change, if_match=if_match_version(request)
        )
        return write_response(request, result.stored, 200, base)

    return patch, conditional_patch


async def _patch_body(request: Request, settings: SettingsDep) -> ResourceChange:
    check_content_type(request, allowed=frozenset({JSON_PATCH}))
    operations = parse_json(await request.body(), max_depth=settings.max_json_depth)
    return json_patch(operations)
