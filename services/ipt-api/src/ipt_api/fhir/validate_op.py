"""`POST /fhir/{type}/$validate`: would this resource be accepted? Stores nothing.

The body is the resource, or a Parameters resource with a `resource` parameter (and an
optional `mode` of create or update). The answer is an OperationOutcome with 200 whether or
not the resource is valid, as the operation's definition says; a request the operation
cannot understand (no resource, wrong type, bad JSON) is a 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from ipt_api.authz import authorize
from ipt_api.fhir.body import read_json_object
from ipt_api.fhir.context import FhirContextDep
from ipt_api.fhir.media import check_content_type
from ipt_api.fhir.responses import json_response
from ipt_api.fhir.routes import FhirOperation
from ipt_api.outcomes import operation_outcome
from ipt_core.fhir.errors import InvalidRequest, InvalidResource, Issue
from ipt_core.fhir.validation import check_resource

__all__ = ["VALIDATE_OPERATION", "validate_issues"]

_MODES = frozenset({"create", "update"})


async def validate(ctx: FhirContextDep) -> Response:
    """Check a resource (or a Parameters naming one) as a create would; store nothing."""
    authorize(await ctx.principal(), ctx.type, "operation")
    check_content_type(ctx.request)
    body = await read_json_object(ctx.request, max_depth=ctx.settings.max_json_depth)
    issues = validate_issues(ctx.type, _resource_of(body))
    return json_response(operation_outcome(issues))


VALIDATE_OPERATION = FhirOperation(
    "POST",
    "/{type}/$validate",
    validate,
    "Validate a {t}",
    {"_200": "OperationOutcome"},
    body="{t}",
    tags=("{t}",),
)


def validate_issues(resource_type: str, resource: dict[str, Any]) -> list[Issue]:
    """Return the problems of `resource` as a `resource_type`, or one informational issue."""
    if resource.get("resourceType") != resource_type:
        raise InvalidRequest(
            f"$validate on {resource_type} was given a {resource.get('resourceType')!r}",
            expression=("resourceType",),
        )
    try:
        check_resource(resource)
    except InvalidResource as invalid:
        return list(invalid.issues)
    return [Issue("informational", "No issues found", severity="information")]


def _resource_of(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("resourceType") != "Parameters":
        return body
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise InvalidRequest("Parameters.parameter must be an array")
    named = {p.get("name"): p for p in parameters if isinstance(p, dict)}
    mode = named.get("mode", {}).get("valueCode")
    if mode is not None and mode not in _MODES:
        raise InvalidRequest(f"$validate mode {mode!r} is not supported here (create, update)")
    resource = named.get("resource", {}).get("resource")
    if not isinstance(resource, dict):
        raise InvalidRequest("$validate needs a 'resource' parameter holding the resource")
    return resource
