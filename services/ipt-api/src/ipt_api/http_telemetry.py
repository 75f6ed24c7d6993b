"""The server span and HTTP metrics of each request, named by route template, never by URL.

The span is named `METHOD /route/{template}` from the route the router matched (kept in the
ASGI scope), so nothing walks the routes a second time (bench/PROFILE.md, finding 1). One
route serves every FHIR type (`/fhir/{type}/{id}`); the name carries the type when it is a
served one (a bounded set), so traces read `GET /fhir/Patient/{id}`. Only templates, methods
and status codes are recorded: no path, query, host or body (README, "Observability").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from ipt_core.fhir.registry import REGISTRY

__all__ = ["HttpTelemetry", "RequestRecord"]

_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
_ROOT = Context()  # what the propagators extract from no headers


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

    def request(self, scope: Scope) -> _Traced:
        """Trace and measure the request of `scope` for the duration of a `with` block."""
        return _Traced(self, scope)


class _Traced:
    """The span and measurements of one request, as a context manager.

    A plain class rather than `@contextmanager` around `start_as_current_span`: those are
    three generator-based context managers per request (bench/PROFILE.md, finding 1). It does
    what `start_as_current_span` does: start the span, make it current, then (after the name
    and attributes are set) restore the context and end the span.
    """

    __slots__ = ("_base", "_scope", "_span", "_started", "_telemetry", "_token", "record")

    def __init__(self, telemetry: HttpTelemetry, scope: Scope) -> None:
        self._telemetry = telemetry
        self._scope = scope
        self.record = RequestRecord()

    def __enter__(self) -> RequestRecord:
        scope, telemetry = self._scope, self._telemetry
        if scope["path"] in _UNTRACED:
            self._span = None
            return self.record
        method: str = scope["method"]
        self._base = {"http.request.method": method, "url.scheme": scope.get("scheme", "http")}
        telemetry._active.add(1, self._base)
        self._started = time.perf_counter()
        carrier = _carrier(scope)
        # Without trace headers the propagators return an empty root context: skip them.
        parent = propagate.extract(carrier) if carrier else _ROOT
        self._span = span = telemetry._tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        )
        # A span nobody records (no tracer provider installed: nothing exports spans) is not
        # made current: attaching and detaching it cost more than the request's span itself.
        self._token = (
            context.attach(trace.set_span_in_context(span)) if span.is_recording() else None
        )
        return self.record

    def __exit__(self, *exc_info: object) -> None:
        span = self._span
        if span is None:
            return
        try:
            scope, status = self._scope, self.record.status
            route = route_template(scope)
            attributes = {**self._base, "http.response.status_code": status}
            if route is not None:
                attributes["http.route"] = route
                span.update_name(f"{scope['method']} {route}")
            if status >= 500:
                attributes["error.type"] = str(status)
                span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(attributes)
            self._telemetry._duration.record(time.perf_counter() - self._started, attributes)
            self._telemetry._active.add(-1, self._base)
        finally:
            if self._token is not None:
                context.detach(self._token)
            span.end()


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
