"""FHIR responses: stored JSON served as bytes, with the version headers clients rely on."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from ipt_api.fhir.media import FHIR_JSON
from ipt_api.outcomes import operation_outcome
from ipt_core.fhir.errors import Issue
from ipt_core.fhir.model import StoredResource

__all__ = ["FhirResponse", "json_response", "stored_response", "write_response"]


class FhirResponse(Response):
    """A response whose body is FHIR JSON."""

    media_type = f"{FHIR_JSON}; charset=utf-8"


def json_response(body: dict[str, Any], status: int = 200, **headers: str) -> FhirResponse:
    """Serialize `body` (a resource built in memory, e.g. a Bundle) as FHIR JSON."""
    return FhirResponse(orjson.dumps(body), status_code=status, headers=headers)


def stored_response(
    stored: StoredResource, status: int = 200, *, location: str | None = None
) -> FhirResponse:
    """Serve a stored version as-is: no parsing, no re-serialization."""
    response = FhirResponse((stored.content or "").encode(), status_code=status)
    _version_headers(response, stored, location)
    return response


def write_response(request: Request, stored: StoredResource, status: int, base: str) -> Response:
    """Answer a create or update as its `Prefer: return=` header asks."""
    location = f"{base}/{stored.path}"
    prefer = _prefer_return(request)
    if prefer == "minimal":
        response: Response = Response(status_code=status)
        _version_headers(response, stored, location)
        return response
    if prefer == "OperationOutcome":
        verb = "created" if status == 201 else "updated"
        outcome = operation_outcome(
            [
                Issue(
                    "informational",
                    f"{stored.resource_type}/{stored.id} {verb}",
                    severity="information",
                )
            ]
        )
        response = json_response(outcome, status)
        _version_headers(response, stored, location)
        return response
    return stored_response(stored, status, location=location)


def _version_headers(response: Response, stored: StoredResource, location: str | None) -> None:
    response.headers["ETag"] = stored.etag
    response.headers["Last-Modified"] = stored.last_modified
    if location is not None:
        response.headers["Location"] = location
        response.headers["Content-Location"] = location


def _prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "return":
            return value.strip('"')
    return "representation"
