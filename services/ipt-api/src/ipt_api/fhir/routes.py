"""The one way a /fhir route is declared: a `FhirOperation`, added by `add_operations`.

An operation whose path holds `{type}` is ONE route for every resource type (the type is a
path parameter that `ipt_api.fhir.context` checks against the registry), so routing stays a
short walk however many types are served (bench/PROFILE.md, finding 1). The OpenAPI
document still lists each type's operations: `documented_routes` expands those operations
per type, for the document only (`ipt_api.openapi.openapi_document`), with the operation ids
and summaries the per-type routes had.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute

from ipt_api.fhir.responses import FhirResponse
from ipt_api.openapi import fhir_body, fhir_responses

__all__ = ["FhirOperation", "Route", "add_operations", "documented_routes", "fhir_api_router"]

Route = Callable[..., Awaitable[Response]]
_TYPE = "{type}"


@dataclass(frozen=True)
class FhirOperation:
    """One /fhir route: `{t}` in the summary, tags, answers and body stands for the type."""

    method: str
    path: str  # under /fhir
    endpoint: Route
    summary: str = ""
    returns: Mapping[str, str | None] = field(default_factory=dict)  # `fhir_responses` arguments
    body: str | None = None  # the request body's schema (`fhir_body`)
    tags: tuple[str, ...] = ("FHIR",)
    documented: bool = True
    name: str | None = None  # the route's name; default: the endpoint's

    @property
    def route_name(self) -> str:
        """The route's name (per-type documented routes add `-Type`)."""
        return self.name or self.endpoint.__name__

    @property
    def per_type(self) -> bool:
        """Whether the path holds the resource type as a parameter."""
        return _TYPE in self.path

    def route_arguments(self, t: str = _TYPE) -> dict[str, Any]:
        """`add_api_route` arguments of this operation, documented for type `t`."""
        arguments: dict[str, Any] = {
            "methods": [self.method],
            "summary": self.summary.format(t=t),
            "tags": [tag.format(t=t) for tag in self.tags],
            "responses": fhir_responses(**{k: _of(v, t) for k, v in self.returns.items()}),
        }
        if self.body is not None:
            arguments["openapi_extra"] = fhir_body(self.body.format(t=t))
        return arguments


def fhir_api_router() -> APIRouter:
    """An empty /fhir router answering FHIR JSON."""
    return APIRouter(prefix="/fhir", default_response_class=FhirResponse)


def add_operations(router: APIRouter, operations: Iterable[FhirOperation]) -> None:
    """Add each operation as one route (per-type ones are left out of the schema here)."""
    for op in operations:
        router.add_api_route(
            op.path,
            op.endpoint,
            name=op.route_name,
            include_in_schema=op.documented and not op.per_type,
            **op.route_arguments(),
        )


def documented_routes(
    operations: Sequence[FhirOperation], resource_types: Iterable[str]
) -> list[APIRoute]:
    """The per-type operations as one route per type, for the OpenAPI document only."""
    per_type = [op for op in operations if op.per_type and op.documented]
    return [
        APIRoute(
            "/fhir" + op.path.replace(_TYPE, t),
            op.endpoint,
            name=f"{op.route_name}-{t}",
            operation_id=f"{op.route_name}_{t}",
            response_class=FhirResponse,
            **op.route_arguments(t),
        )
        for t in resource_types
        for op in per_type
    ]


def _of(schema: str | None, t: str) -> str | None:
    return schema.format(t=t) if schema is not None else None
