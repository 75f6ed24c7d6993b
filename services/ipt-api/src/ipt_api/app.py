"""The FastAPI application: FHIR REST at /fhir, probes, and (later) the IPT domain API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from ipt_api.analytics.router import analytics_router
from ipt_api.auth import TokenVerifier
from ipt_api.bulk.router import bulk_router
from ipt_api.courses import courses_router
from ipt_api.docs import install_docs
from ipt_api.errors import install_error_handlers
from ipt_api.events.router import events_router
from ipt_api.fhir.capability import SOFTWARE_VERSION
from ipt_api.fhir.conformance import conformance_router
from ipt_api.fhir.interactions import fhir_router
from ipt_api.fhir.smart import smart_router
from ipt_api.health import health_router, prometheus_metrics
from ipt_api.openapi import openapi_document
from ipt_api.settings import ApiSettings
from ipt_api.status.router import fhir_status_router, status_router
from ipt_api.webhooks.router import webhooks_router
from ipt_api.worker import embedded_worker
from ipt_core.db.provision import Database, open_database
from ipt_core.fhir.store import WriteListener
from ipt_core.telemetry import configure_process, scrub_server_span, setup_logging
from ipt_worker.listeners import default_listeners

__all__ = ["create_app"]

_DESCRIPTION = """
Courses of Interpersonal Psychotherapy (IPT) kept as FHIR R4 resources.

* **FHIR R4 REST** at `/fhir` (`application/fhir+json`; `application/json` accepted).
  Every error is an OperationOutcome.
* **IPT domain API** at `/ipt/v1` (plain JSON): enrol a course from an intake outline,
  record sessions with their PHQ-9, manage and read courses. Errors are OperationOutcomes.
"""


def create_app(
    settings: ApiSettings | None = None,
    *,
    database: Database | None = None,
    write_listeners: Sequence[WriteListener] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Create the application.

    Args:
        settings: defaults to the environment's settings; then the process's logging,
            tracing and metrics are set up too (the app was started as a factory).
        database: an already-open database (tests share one); else one is opened at start.
        write_listeners: extra listeners run inside every resource write's transaction,
            after the default ones (the IPT projections).
        clock: the time source of the resource store (injectable for tests).
        tracer_provider: where request spans go; defaults to the process's provider.
    """
    setup_logging()  # idempotent: JSON lines, no access log, however the app is started
    if settings is None:
        # Started by a server as a factory (`uvicorn ipt_api.app:create_app --factory`, the
        # container's command): the process's telemetry is set up here, from the environment.
        settings = ApiSettings()
        configure_process(
            "ipt-api",
            otlp_endpoint=settings.otel_exporter_otlp_endpoint,
            prometheus=settings.metrics_enabled,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = database or await open_database(settings)
        worker = embedded_worker(app.state.database.engine, clock) if settings.run_worker else None
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            if database is None:
                await app.state.database.close()

    app = FastAPI(
        title="IPT Care Service",
        version=SOFTWARE_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by `install_docs`, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.write_listeners = (*default_listeners(), *write_listeners)
    app.state.clock = clock
    app.state.token_verifier = (
        TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.token_audience or "",
            jwks=settings.auth_jwks,
        )
        if settings.auth_issuer and settings.auth_jwks
        else None
    )
    install_error_handlers(app)
    install_docs(app)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        server_request_hook=scrub_server_span,
        excluded_urls="healthz,readyz,metrics",
    )
    if settings.metrics_enabled:
        app.add_route("/metrics", prometheus_metrics, include_in_schema=False)
    app.include_router(health_router)
    app.include_router(status_router)
    app.include_router(courses_router)
    app.include_router(events_router)
    app.include_router(analytics_router)
    app.include_router(webhooks_router)
    app.include_router(bulk_router)  # before the FHIR catch-all routes
    app.include_router(fhir_status_router)  # before the FHIR catch-all routes
    app.include_router(conformance_router())  # before the FHIR catch-all routes
    app.include_router(smart_router)  # before the FHIR catch-all routes
    app.include_router(fhir_router())
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app
