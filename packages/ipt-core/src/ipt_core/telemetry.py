"""OpenTelemetry for every process: traces, metrics, and JSON logs that carry trace ids.

Exporters follow the standard `OTEL_*` variables (OTLP over HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set). Nothing about a patient may reach a span, a metric
label or a log line: URLs and queries are replaced by route templates before export, SQL
spans carry statements with placeholders only, and request bodies are never recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.logs import setup_logging

__all__ = [
    "configure_process",
    "context_from_traceparent",
    "current_traceparent",
    "instrument_engine",
    "meter_provider",
    "setup_logging",
    "setup_metrics",
    "setup_tracing",
    "spans_recorded",
]

_URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query", "url.path")


def setup_tracing(
    service_name: str, *, otlp_endpoint: str | None, extra: SpanProcessor | None = None
) -> TracerProvider | None:
    """Install the process's tracer provider when spans go somewhere; return it, else None.

    Spans are exported over OTLP when an endpoint is configured; `extra` adds a processor
    (an in-memory exporter's in tests). With neither, no provider is installed and
    OpenTelemetry's default no-op tracer stays: a span that no processor takes is CPU spent
    on nothing, ~30 µs per request at the API's edge (bench/PROFILE.md, "Third round").
    """
    if not otlp_endpoint and extra is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if extra is not None:
        provider.add_span_processor(extra)
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider, request_hook=_scrub_outbound, async_request_hook=_scrub_async
    )
    return provider


_configured: set[str] = set()


def configure_process(service_name: str, *, otlp_endpoint: str | None, prometheus: bool) -> None:
    """Logging, tracing and metrics of a server process, once, however it was started.

    `uvicorn ipt_api.app:create_app --factory` (the container) and `ipt serve` both end here,
    so both log the same way and export the same spans. Calling it again does nothing.
    """
    setup_logging()
    if service_name in _configured:
        return
    _configured.add(service_name)
    setup_tracing(service_name, otlp_endpoint=otlp_endpoint)
    setup_metrics(prometheus=prometheus)


def instrument_engine(engine: AsyncEngine, provider: TracerProvider | None = None) -> None:
    """Trace every database call of `engine` (statements with placeholders, no values)."""
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=provider, enable_commenter=False
    )


def spans_recorded() -> bool:
    """Whether this process records spans: `setup_tracing` (or an agent) installed an SDK provider.

    Without one every span is OpenTelemetry's no-op, which only hands back its parent's
    context, so a hot loop may skip making spans nobody will see: the status engine's span
    and traceparent per course cost ~14 µs, 5-7% of an unchanged recompute
    (bench/PROFILE.md, "Fifth round").
    """
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to carry into queues and events."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """The context to continue a trace that a queued request or event carried."""
    if not traceparent:
        return None
    return propagate.extract({"traceparent": traceparent})


def _scrub_outbound(span: Any, request: Any) -> None:
    # Outbound URLs (EHR searches) carry patient ids in paths and queries: keep the host only.
    if span is None or not span.is_recording():
        return
    url = request.url
    host = f"{url.scheme.decode() if isinstance(url.scheme, bytes) else url.scheme}://" + (
        url.host.decode() if isinstance(url.host, bytes) else str(url.host)
    )
    for name in _URL_ATTRIBUTES:
        span.set_attribute(name, host)


async def _scrub_async(span: Any, request: Any) -> None:
    _scrub_outbound(span, request)


# Attributes HTTP server metrics keep (the API's edge records only these, ipt_api/http_telemetry.py;
# the view is the backstop): never the client-supplied `Host` (http.host, server.address …),
# whose every forged value would start a new series, growing /metrics without bound.
_HTTP_METRIC_ATTRIBUTES = frozenset(
    {
        "http.method",
        "http.scheme",
        "http.status_code",
        "http.flavor",
        "http.route",
        "http.request.method",
        "http.response.status_code",
        "url.scheme",
        "network.protocol.version",
        "error.type",
    }
)


def meter_provider(readers: Sequence[Any] = ()) -> Any:
    """A meter provider whose HTTP server metrics carry no client-supplied host."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import View

    views = [View(instrument_name="http.server.*", attribute_keys=set(_HTTP_METRIC_ATTRIBUTES))]
    return MeterProvider(metric_readers=list(readers), views=views)


def setup_metrics(*, prometheus: bool) -> None:
    """Install the meter provider when metrics are read: with `prometheus`, at /metrics.

    Without a reader no provider is installed and the default no-op meter stays: recording
    into a provider nobody reads cost ~25 µs per API request (bench/PROFILE.md, "Third
    round").
    """
    if not prometheus:
        return
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    metrics.set_meter_provider(meter_provider([PrometheusMetricReader()]))
