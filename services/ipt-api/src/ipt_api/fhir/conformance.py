"""The IPT conformance resources, read-only under /fhir (issue 4, item 5).

The CodeSystems of docs/ipt-model.md, the course profile, the phase extension and the
`careplan` SearchParameters are built in code (`ipt_core.ipt.conformance_resources`), not
stored: they change with a release, never through the API. Like the CapabilityStatement they
describe the server and hold no patient data, so reading them needs no token.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request, Response

from ipt_api.fhir.context import FhirContextDep
from ipt_api.fhir.responses import json_response
from ipt_api.fhir.routes import FhirOperation, add_operations, fhir_api_router
from ipt_core.fhir.errors import MethodNotAllowed, ResourceNotFound
from ipt_core.ipt import conformance_resource, conformance_resources

__all__ = ["CONFORMANCE_TYPES", "conformance_capabilities", "conformance_router"]

CONFORMANCE_TYPES: Final = ("CodeSystem", "StructureDefinition", "SearchParameter")
# Search parameters of the type-level listing; anything else is ignored, as vendors' are.
_SEARCH_PARAMS: Final = {
    "_id": ("token", "Logical id of the resource"),
    "url": ("uri", "The canonical URL of the resource"),
}
_WRITE_METHODS: Final = ["POST", "PUT", "DELETE", "PATCH"]


def conformance_router() -> APIRouter:
    """Build the routes: read and list each conformance type; refuse writes with a 405."""
    router = fhir_api_router()
    add_operations(router, _operations())
    return router


def _operations() -> list[FhirOperation]:
    operations = []
    for t in CONFORMANCE_TYPES:
        tags = ("Conformance",)
        list_summary = f"List the {t} resources of the IPT model"
        read_summary = f"Read a {t} of the IPT model"
        operations += [
            FhirOperation(
                "GET",
                f"/{t}",
                _lister(t),
                list_summary,
                {"_200": "Bundle"},
                tags=tags,
                name=f"search-{t}",
            ),
            FhirOperation(
                "GET",
                f"/{t}/{{id}}",
                _reader(t),
                read_summary,
                {"_200": t},
                tags=tags,
                name=f"read-{t}",
            ),
        ]
        operations += [
            FhirOperation(method, path, _read_only, documented=False)
            for path in (f"/{t}", f"/{t}/{{rest:path}}")
            for method in _WRITE_METHODS
        ]
    return operations


def conformance_capabilities() -> list[dict[str, Any]]:
    """The CapabilityStatement entries of the conformance types: read and search only."""
    return [
        {
            "type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [
                {"name": name, "type": kind, "documentation": text}
                for name, (kind, text) in _SEARCH_PARAMS.items()
            ],
        }
        for resource_type in CONFORMANCE_TYPES
    ]


def _reader(resource_type: str) -> Any:
    async def read(ctx: FhirContextDep, id: str) -> Response:
        found = conformance_resource(resource_type, id)
        if found is None:
            raise ResourceNotFound(f"{resource_type}/{id} is not known")
        return json_response(found)

    return read


def _lister(resource_type: str) -> Any:
    async def search(ctx: FhirContextDep) -> Response:
        request = ctx.request
        wanted_ids = _values(request, "_id")
        wanted_urls = _values(request, "url")
        matches = [
            found
            for found in conformance_resources()
            if found["resourceType"] == resource_type
            and (wanted_ids is None or found["id"] in wanted_ids)
            and (wanted_urls is None or found.get("url") in wanted_urls)
        ]
        return json_response(_searchset(request, ctx.base, resource_type, matches))

    return search


async def _read_only(ctx: FhirContextDep) -> Response:
    path = ctx.request.url.path
    raise MethodNotAllowed(f"{path} is read-only: the IPT model's definitions")


def _values(request: Request, name: str) -> set[str] | None:
    given = request.query_params.getlist(name)
    if not given:
        return None
    return {value for joined in given for value in joined.split(",")}


def _searchset(
    request: Request, base: str, resource_type: str, matches: list[dict[str, Any]]
) -> dict[str, Any]:
    query = f"?{request.url.query}" if request.url.query else ""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": [{"relation": "self", "url": f"{base}/{resource_type}{query}"}],
    }
    if matches:  # FHIR JSON has no empty arrays
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{resource_type}/{found['id']}",
                "resource": found,
                "search": {"mode": "match"},
            }
            for found in matches
        ]
    return bundle
