"""PATCH with JSON Patch (RFC 6902): `PATCH /fhir/{type}/{id}` and `PATCH /fhir/{type}?criteria`.

The patch is applied to the current version under its row lock (ResourceStore.patch), so
concurrent patches never lose an update; `If-Match` is honoured and the result is validated
like any write. A patch that cannot be applied (a failed `test`, a missing path) is a 422.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
from fastapi import Response

from ipt_api.authz import (
    authorize,
    authorize_criteria,
    compartment_criteria,
    require_writable,
)
from ipt_api.fhir.context import FhirContext, FhirContextDep
from ipt_api.fhir.media import check_content_type
from ipt_api.fhir.preconditions import if_match_version
from ipt_api.fhir.responses import write_response
from ipt_api.fhir.routes import FhirOperation
from ipt_api.json_input import parse_json
from ipt_core.fhir.errors import FhirError, InvalidRequest
from ipt_core.fhir.store import ResourceChange

__all__ = ["JSON_PATCH", "PATCH_OPERATIONS", "PatchFailed", "json_patch"]

JSON_PATCH = "application/json-patch+json"


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


async def patch(ctx: FhirContextDep, id: str) -> Response:
    """Patch a resource by id."""
    store, principal = await ctx.writer()
    authorize(principal, ctx.type, "patch", id_=id)
    await require_writable(store, principal, ctx.type, id)
    change = await _patch_body(ctx)
    result = await store.patch(ctx.type, id, change, if_match=if_match_version(ctx.request))
    return write_response(ctx.request, result.stored, 200, ctx.base)


async def conditional_patch(ctx: FhirContextDep) -> Response:
    """Patch the one resource the query's criteria match."""
    store, principal = await ctx.writer()
    query = str(ctx.request.url.query)
    authorize(principal, ctx.type, "patch")
    if not query:
        raise InvalidRequest("A conditional patch needs search criteria in the query")
    authorize_criteria(principal, ctx.type, query)
    criteria = compartment_criteria(principal, ctx.type, query)
    change = await _patch_body(ctx)
    result = await store.conditional_patch(
        ctx.type, criteria, change, if_match=if_match_version(ctx.request)
    )
    return write_response(ctx.request, result.stored, 200, ctx.base)


async def _patch_body(ctx: FhirContext) -> ResourceChange:
    check_content_type(ctx.request, allowed=frozenset({JSON_PATCH}))
    operations = parse_json(await ctx.request.body(), max_depth=ctx.settings.max_json_depth)
    return json_patch(operations)


_PATCHED = {"_200": "{t}"}
PATCH_OPERATIONS = (
    FhirOperation(
        "PATCH",
        "/{type}/{id}",
        patch,
        "Patch a {t} with a JSON Patch",
        _PATCHED,
        body="JsonPatch",
        tags=("{t}",),
    ),
    FhirOperation(
        "PATCH",
        "/{type}",
        conditional_patch,
        "Patch the {t} matching the criteria",
        _PATCHED,
        body="JsonPatch",
        tags=("{t}",),
    ),
)
