"""The server span and HTTP metrics of each request, named by route template, never by URL.

The span is named `METHOD /route/{template}` from the route the router matched (kept in the
ASGI scope), so nothing walks the routes a second time (bench/PROFILE.md, finding 1). One
route serves every FHIR type (`/fhir/{type}/{id}`); the name carries the type when it is a
served one (a bounded set), so traces read `GET /fhir/Patient/{id}`. Only templates, methods
and status codes are recorded: no path, query, host or body (README, "Observability").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from ipt_core.fhir.registry import REGISTRY

__all__ = ["HttpTelemetry", "RequestRecord"]

_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


@dataclass
class RequestRecord:
    """What the edge learns about a request while serving it."""

    status: int = 500  # until a response starts: an exception escaped the app


class HttpTelemetry:
    """Spans and `http.server.*` metrics of the API's requests."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Use the given providers, else the process's (looked up when first used)."""
        self._tracer = trace.get_tracer("ipt_api.http", tracer_provider=tracer_provider)
        meter = metrics.get_meter("ipt_api.http", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "http.server.request.duration", unit="s", description="Duration of HTTP requests"
        )
        self._active = meter.create_up_down_counter(
            "http.server.active_requests", unit="{request}", description="Requests in flight"
        )

    @contextmanager
    def request(self, scope: Scope) -> Iterator[RequestRecord]:
        """Trace and measure the request of `scope` for the duration of the block."""
        record = RequestRecord()
        if scope["path"] in _UNTRACED:
            yield record
            return
        method: str = scope["method"]
        base = {"http.request.method": method, "url.scheme": scope.get("scheme", "http")}
        self._active.add(1, base)
        started = time.perf_counter()
        parent = propagate.extract(_carrier(scope))
        with self._tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield record
            finally:
                route = route_template(scope)
                attributes = {**base, "http.response.status_code": record.status}
                if route is not None:
                    attributes["http.route"] = route
                    span.update_name(f"{method} {route}")
                if record.status >= 500:
                    attributes["error.type"] = str(record.status)
                    span.set_status(Status(StatusCode.ERROR))
                span.set_attributes(attributes)
                self._duration.record(time.perf_counter() - started, attributes)
                self._active.add(-1, base)


def route_template(scope: Scope) -> str | None:
    """The matched route's template, with a served FHIR type filled in; None if none matched."""
    route = scope.get("route")
    template: str | None = getattr(route, "path_format", None)
    if template is None or "{type}" not in template:
        return template
    resource_type = scope.get("path_params", {}).get("type")
    return template.replace("{type}", resource_type) if resource_type in REGISTRY else template


def _carrier(scope: Scope) -> dict[str, str]:
    """The trace-context headers (`traceparent` …), the only ones `propagate.extract` reads."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _PROPAGATED
    }
