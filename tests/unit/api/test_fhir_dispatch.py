"""The FHIR dispatch picks exactly the route the router would, or leaves the request to it.

`ipt_api.fhir.dispatch` compiles the app's routes into one pattern per method; the router
decides by walking them (`matches`, first full match). For every request below, the two must
agree: the dispatch serves a request only when the router's first full match is a FHIR
operation (and then that very route), and never one an earlier router claims (bulk export,
the audit log, conformance resources, SMART configuration).
"""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from ipt_api.app import create_app
from ipt_api.fhir.dispatch import _compile
from ipt_api.settings import ApiSettings

_APP = create_app(ApiSettings(auth_mode="disabled", api_host="127.0.0.1"), ehr_endpoints=())
_TABLES = _compile(_APP.router.routes)

_REQUESTS = [
    ("GET", "/fhir/Patient/p1"),
    ("GET", "/fhir/Patient/p1/_history/2"),
    ("GET", "/fhir/Patient/p1/_history"),
    ("GET", "/fhir/Patient/_history"),
    ("GET", "/fhir/Patient"),
    ("GET", "/fhir/Patient/"),
    ("GET", "/fhir/_history"),
    ("GET", "/fhir/metadata"),
    ("GET", "/fhir/Unknown/x"),
    ("GET", "/fhir/AuditEvent/a1"),
    ("GET", "/fhir/AuditEvent"),
    ("PUT", "/fhir/AuditEvent/a1"),
    ("GET", "/fhir/CodeSystem/c1"),
    ("PUT", "/fhir/CodeSystem/c1"),
    ("GET", "/fhir/Patient/$export"),
    ("GET", "/fhir/$export"),
    ("GET", "/fhir/Group/g1/$export"),
    ("GET", "/fhir/$export-status/e1"),
    ("GET", "/fhir/CarePlan/c1/$ipt-status"),
    ("GET", "/fhir/.well-known/smart-configuration"),
    ("POST", "/fhir"),
    ("POST", "/fhir/"),
    ("POST", "/fhir/Patient"),
    ("POST", "/fhir/Patient/_search"),
    ("POST", "/fhir/Patient/$validate"),
    ("PUT", "/fhir/Patient/p1"),
    ("PUT", "/fhir/Patient"),
    ("PATCH", "/fhir/Patient/p1"),
    ("DELETE", "/fhir/Patient/p1"),
    ("DELETE", "/fhir/Patient"),
    ("HEAD", "/fhir/Patient/p1"),
    ("OPTIONS", "/fhir/Patient/p1"),
    ("GET", "/fhir/Patient/p1/extra/segments"),
    ("GET", "/ipt/v1/courses/c1"),
    ("GET", "/docs/assets/x.js"),
]


def _router_choice(method: str, path: str) -> object | None:
    """The route the router serves `method path` with, when one fully matches."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for rc in iter_route_contexts(_APP.router.routes):
        match, _ = rc.matches(scope)
        if match == Match.FULL:
            return rc.original_route
    return None


def _dispatch_choice(method: str, path: str) -> object | None:
    table = _TABLES.get(method)
    if table is None:
        return None
    pattern, operations = table
    found = pattern.match(path)
    op = operations[found.lastgroup or ""] if found is not None else None
    return op.route if op is not None else None


@pytest.mark.parametrize(("method", "path"), _REQUESTS)
def test_the_dispatch_serves_what_the_router_would(method: str, path: str) -> None:
    dispatched = _dispatch_choice(method, path)
    routed = _router_choice(method, path)
    if dispatched is not None:
        assert dispatched is routed
    else:
        served = [op.route for _, ops in _TABLES.values() for op in ops.values() if op]
        assert not any(route is routed for route in served)


def test_the_interactions_are_dispatched_and_earlier_routers_keep_theirs() -> None:
    def name(method: str, path: str) -> str | None:
        route = _dispatch_choice(method, path)
        return getattr(route, "name", None)

    assert name("GET", "/fhir/Patient/p1") == "read"
    assert name("GET", "/fhir/Patient/p1/_history/1") == "vread"
    assert name("GET", "/fhir/Encounter") == "search"
    assert name("POST", "/fhir/Patient") == "create"
    assert name("GET", "/fhir/AuditEvent/a1") is None  # the audit router's read
    assert name("GET", "/fhir/Patient/$export") is None  # bulk export
    assert name("GET", "/fhir/.well-known/smart-configuration") is None
