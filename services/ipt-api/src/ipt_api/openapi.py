"""The OpenAPI document: FastAPI's, plus the FHIR shapes and the OperationOutcome errors.

Every operation documents its errors as OperationOutcome (4XX, 5XX), because that is what
the error handlers send for every failure. FHIR routes declare what they answer with
`fhir_responses` (a resource of their type, a Bundle, an OperationOutcome …); the schemas
are loose on purpose (required `resourceType`, open to every other element), enough for
generated clients to pick the right type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from ipt_core.fhir.registry import REGISTRY

__all__ = ["fhir_body", "fhir_responses", "openapi_document"]

FHIR_JSON = "application/fhir+json"
_ID_PATTERN = r"^[A-Za-z0-9\-\.]{1,64}$"

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


def _typed(resource_type: str, description: str = "") -> dict[str, Any]:
    return {
        "type": "object",
        "description": description or f"A FHIR R4 {resource_type}",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"type": "string", "enum": [resource_type]},
            "id": {"type": "string", "pattern": _ID_PATTERN},
            "meta": {
                "type": "object",
                "properties": {
                    "versionId": {"type": "string"},
                    "lastUpdated": {"type": "string"},
                },
            },
        },
        "additionalProperties": True,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_BUNDLE = _typed("Bundle", "A FHIR R4 Bundle: a searchset, a history, or a batch's answers")
_BUNDLE["required"] = ["resourceType", "type"]
_BUNDLE["properties"] |= {
    "type": {
        "type": "string",
        "enum": ["searchset", "history", "batch-response", "transaction-response"],
    },
    "total": {"type": "integer", "minimum": 0},
    "link": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["relation", "url"],
            "properties": {"relation": {"type": "string"}, "url": {"type": "string"}},
        },
    },
    "entry": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "fullUrl": {"type": "string"},
                "resource": _ref("Resource"),
                "search": {
                    "type": "object",
                    "properties": {"mode": {"enum": ["match", "include", "outcome"]}},
                },
                "request": {"type": "object"},
                "response": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}, "outcome": _ref("Resource")},
                },
            },
        },
    },
}
_JSON_PATCH = {
    "type": "array",
    "description": "A JSON Patch document (RFC 6902)",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    },
}


def fhir_body(schema: str) -> dict[str, Any]:
    """`openapi_extra` of a route taking a FHIR resource (`schema`: a component name)."""
    content: dict[str, Any]
    if schema == "JsonPatch":
        content = {"application/json-patch+json": {"schema": _ref(schema)}}
    elif schema == "SearchForm":
        form = {"type": "object", "additionalProperties": {"type": "string"}}
        content = {"application/x-www-form-urlencoded": {"schema": form}}
        return {"requestBody": {"required": False, "content": content}}
    else:
        content = {FHIR_JSON: {"schema": _ref(schema)}}
    return {"requestBody": {"required": True, "content": content}}


def fhir_responses(**returns: str | None) -> dict[int | str, Any]:
    """`responses` of a FHIR route: status code (as `_200`, `_201` …) to a schema name.

    None is an answer without a body (304 Not Modified).
    """
    responses: dict[int | str, Any] = {}
    for status, schema in returns.items():
        code = int(status.lstrip("_"))
        description = _DESCRIPTIONS.get(code, "Success")
        if schema is None:
            responses[code] = {"description": description}
        else:
            content = {FHIR_JSON: {"schema": _ref(schema)}}
            responses[code] = {"description": description, "content": content}
    return responses


_DESCRIPTIONS = {
    200: "Success",
    201: "Created",
    304: "Not modified since the version named by If-None-Match / If-Modified-Since",
}


def resource_schemas(resource_types: Iterable[str]) -> dict[str, Any]:
    """The component schemas of `resource_types`, Bundle, Resource and OperationOutcome."""
    schemas: dict[str, Any] = {t: _typed(t) for t in resource_types}
    schemas |= {
        "Resource": _RESOURCE,
        "OperationOutcome": _OPERATION_OUTCOME,
        "Bundle": _BUNDLE,
        "JsonPatch": _JSON_PATCH,
    }
    return schemas


def openapi_document(
    app: FastAPI, documented: Callable[[], Sequence[BaseRoute]] = list
) -> dict[str, Any]:
    """Build (once) and return the app's OpenAPI document.

    `documented()` gives routes the app does not serve as such but the document lists: each
    type's FHIR operations, served by one route per interaction (ipt_api/fhir/routes.py).
    """
    if app.openapi_schema is None:
        routes = [*app.routes, *documented()]
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(resource_schemas(_FHIR_TYPES))
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    del responses["422"]  # FastAPI's own: validation errors answer 400 here
                for status, response in _ERRORS.items():
                    responses.setdefault(status, response)
                for response in responses.values():
                    _drop_untyped_fhir_content(response)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


_FHIR_TYPES = (*REGISTRY, "CodeSystem", "StructureDefinition", "SearchParameter")
_FHIR_TYPES += ("CapabilityStatement", "Parameters")


def _drop_untyped_fhir_content(response: dict[str, Any]) -> None:
    # FastAPI documents the response class's media type ("…; charset=utf-8") as a string;
    # the route's declared `application/fhir+json` schema is the real one.
    content = response.get("content", {})
    untyped = f"{FHIR_JSON}; charset=utf-8"
    if untyped in content:
        declared = content.pop(untyped)
        content.setdefault(FHIR_JSON, {"schema": declared.get("schema") or _ref("Resource")})
        if content[FHIR_JSON].get("schema") == {"type": "string"}:
            content[FHIR_JSON]["schema"] = _ref("Resource")
    if not content:
        response.pop("content", None)
