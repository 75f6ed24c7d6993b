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
    return FhirResponse(
        (stored.content or "").encode(),
        status_code=status,
        headers=_version_headers(stored, location),
    )


def write_response(request: Request, stored: StoredResource, status: int, base: str) -> Response:
    """Answer a create or update as its `Prefer: return=` header asks."""
    location = f"{base}/{stored.path}"
    prefer = _prefer_return(request)
    if prefer == "minimal":
        return Response(status_code=status, headers=_version_headers(stored, location))
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
        return json_response(outcome, status, **_version_headers(stored, location))
    return stored_response(stored, status, location=location)


def _version_headers(stored: StoredResource, location: str | None) -> dict[str, str]:
    # Given to the response as it is made: setting them one by one on `response.headers`
    # scans and rebuilds its header list each time.
    headers = {"ETag": stored.etag, "Last-Modified": stored.last_modified}
    if location is not None:
        headers["Location"] = headers["Content-Location"] = location
    return headers


def _prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "return":
            return value.strip('"')
    return "representation"
