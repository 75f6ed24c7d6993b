"""The OpenAPI document: FastAPI's, plus the FHIR shapes and the OperationOutcome errors.

Every operation documents its errors as OperationOutcome (4XX, 5XX), because that is what
the error handlers send for every failure.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["openapi_document"]

_RESOURCE = {
    "type": "object",
    "description": "A FHIR R4 resource in JSON",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
    "additionalProperties": True,
}
_OPERATION_OUTCOME = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: why the request failed",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {
                        "type": "string",
                        "enum": ["fatal", "error", "warning", "information"],
                    },
                    "code": {"type": "string", "examples": ["invalid", "not-found"]},
                    "diagnostics": {"type": "string"},
                    "expression": {
                        "type": "array",
                        "items": {"type": "string"},
                        "examples": [["CarePlan.status"]],
                    },
                },
            },
        },
    },
    "example": {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "code-invalid",
                "diagnostics": "'bogus' is not one of the codes of the required value set",
                "expression": ["CarePlan.status"],
            }
        ],
    },
}
_ERRORS = {
    status: {
        "description": description,
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}
            for media in ("application/fhir+json", "application/json")
        },
    }
    for status, description in (
        ("4XX", "The request was refused; the OperationOutcome says why and where"),
        ("5XX", "The server failed (503 with Retry-After: a transient conflict, retry)"),
    )
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """Build (once) and return the app's OpenAPI document."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Resource"] = _RESOURCE
        schemas["OperationOutcome"] = _OPERATION_OUTCOME
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]  # FastAPI's own: validation errors answer 400 here
                for status, response in _ERRORS.items():
                    responses.setdefault(status, response)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema
