"""The FastAPI application: FHIR REST at /fhir, probes, and (later) the IPT domain API."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from ipt_api.analytics.router import analytics_router
from ipt_api.audit import AuditBuffer, AuditWriteListener
from ipt_api.audit.router import audit_router
from ipt_api.auth import TokenVerifier
from ipt_api.authz.guard import CompartmentWriteGuard
from ipt_api.bulk.router import bulk_router
from ipt_api.courses import courses_router
from ipt_api.deps import get_principal
from ipt_api.docs import install_docs
from ipt_api.edge import Edge
from ipt_api.ehr.router import ehr_router
from ipt_api.errors import install_error_handlers, render_error
from ipt_api.events.router import events_router
from ipt_api.fhir.capability import SOFTWARE_VERSION
from ipt_api.fhir.conformance import conformance_router
from ipt_api.fhir.dispatch import FhirDispatch
from ipt_api.fhir.interactions import fhir_documented_routes, fhir_router
from ipt_api.fhir.smart import smart_router
from ipt_api.health import health_router, prometheus_metrics
from ipt_api.http_telemetry import HttpTelemetry
from ipt_api.openapi import openapi_document
from ipt_api.settings import ApiSettings
from ipt_api.status.router import fhir_status_router, status_router
from ipt_api.webhooks.router import webhooks_router
from ipt_api.worker import start_worker_processes
from ipt_core import composition
from ipt_core.db.kept import KeptConnections
from ipt_core.db.provision import Database, open_database
from ipt_core.db.read_pool import ReadPool
from ipt_core.ehr import EhrEndpoint, configured_endpoints
from ipt_core.events import FeedSignal
from ipt_core.fhir.compiled_model import compiled as compiled_validator
from ipt_core.fhir.store import WriteListener
from ipt_core.heap import freeze_startup_heap
from ipt_core.telemetry import configure_process, setup_logging
from ipt_worker.ehr import register_endpoints

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
    ehr_endpoints: Sequence[EhrEndpoint] | None = None,
    meter_provider: MeterProvider | None = None,
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
        ehr_endpoints: the EHR endpoints; default: `IPT_EHR_ENDPOINTS_FILE`, loaded now (a
            bad file raises EndpointsFileError, naming the entry and field).
        meter_provider: where request metrics go; defaults to the process's provider.
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
    if ehr_endpoints is None:
        # The API lists endpoints and queues push work; it never holds EHR credentials unless
        # it also runs the worker loops (`make run`).
        ehr_endpoints = configured_endpoints(
            settings.ehr_endpoints_file, os.environ, with_secrets=settings.run_worker
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = database or await open_database(
            settings,
            statement_timeout_ms=settings.statement_timeout_ms,
            pool_size=settings.transaction_pool_size,
        )
        # Reads by id and GET searches: connections of the engine's making, in a pool of their
        # own (ipt_core/db/read_pool.py).
        app.state.read_pool = ReadPool(app.state.database.engine, size=settings.read_pool_size)
        # The requests' transactions: connections in autocommit, kept checked out of the
        # engine's pool rather than checked out per request (ipt_core/db/kept.py).
        app.state.kept_connections = KeptConnections(app.state.database.reads)
        app.state.feed_signal = FeedSignal(app.state.database.engine)
        if ehr_endpoints:
            await register_endpoints(app.state.database.engine, ehr_endpoints)
        app.state.workers = (
            start_worker_processes(
                app.state.database.engine.url.render_as_string(hide_password=False),
                settings.run_worker_processes,
                settings=settings,
                ehr_endpoints=ehr_endpoints,
            )
            if settings.run_worker
            else []
        )
        app.state.audit_buffer = AuditBuffer(
            app.state.database.engine, retention_days=settings.audit_retention_days
        )
        app.state.audit_buffer.start()
        compiled_validator()  # at start, not in the first write (~0.1 s); frozen with the rest
        freeze_startup_heap()
        try:
            yield
        finally:
            await app.state.feed_signal.close()
            await app.state.audit_buffer.stop()
            await asyncio.gather(*(worker.stop() for worker in app.state.workers))
            await app.state.read_pool.close()
            await app.state.kept_connections.close()
            if database is None:
                await app.state.database.close()

    app = _App(
        title="IPT Care Service",
        version=SOFTWARE_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by `install_docs`, without a CDN
        redoc_url=None,
        # One telemetry stack, the edge's: FastAPI's native one would record URLs and queries
        # (patient data) and cost a second span per request (bench/PROFILE.md, finding 1).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.write_listeners = (
        CompartmentWriteGuard(),  # first: a refused write does no other work
        *composition.write_listeners(*write_listeners, AuditWriteListener()),
    )
    app.state.clock = clock
    app.state.capabilities = {}  # base URL → the rendered CapabilityStatement (fhir/interactions)
    app.state.public_bases = {}  # what a request's base URL is built from → it (deps.public_base)
    app.state.ehr_endpoints = tuple(ehr_endpoints)
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
    _install_edge(app, settings, HttpTelemetry(tracer_provider, meter_provider))
    if settings.metrics_enabled:
        app.add_route("/metrics", prometheus_metrics, include_in_schema=False)
    # The /fhir routers first: routing walks the routers in order (twice per request in
    # FastAPI 0.165), and FHIR reads are the hot path (bench/PROFILE.md, finding 1). The
    # specific /fhir paths come before the one-route-per-interaction router's `{type}` ones.
    app.include_router(bulk_router)
    app.include_router(fhir_status_router)
    app.include_router(audit_router())
    app.include_router(conformance_router())
    app.include_router(smart_router)
    app.include_router(fhir_router())
    app.include_router(health_router)
    app.include_router(status_router)
    app.include_router(courses_router)
    app.include_router(events_router)
    app.include_router(analytics_router)
    app.include_router(webhooks_router)
    app.include_router(ehr_router)
    app.openapi = lambda: openapi_document(app, fhir_documented_routes)  # type: ignore[method-assign]
    return app


class _App(FastAPI):
    """FastAPI with only the per-request layers this app uses (bench/PROFILE.md, finding 1)."""

    def build_middleware_stack(self) -> ASGIApp:
        """ServerError → the edge → FHIR dispatch → handlers → the router.

        FastAPI's own stack (fastapi/applications.py) adds two layers this app leaves out:
        `ExceptionTelemetryMiddleware`, which only reports to FastAPI's native telemetry (off
        here: the edge traces), and `AppBodyLimitMiddleware`, a pass-through without the app's
        `max_body_size` (the edge limits bodies). The FHIR operations are dispatched before the
        exception middleware and the router (ipt_api/fhir/dispatch.py: it answers errors with
        the same handlers); `AsyncExitStackMiddleware` stays in front of the router, which
        needs it.
        """
        assert self.max_body_size is None, "bodies are limited by the edge (IPT_MAX_BODY_BYTES)"
        error_handler = None
        handlers = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        app: ASGIApp = ExceptionMiddleware(
            AsyncExitStackMiddleware(self.router), handlers=handlers, debug=self.debug
        )
        app = FhirDispatch(
            app,
            routes=self.router.routes,
            router=self.router,
            handlers=handlers,
            overrides=self.dependency_overrides,
        )
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)


def _install_edge(app: FastAPI, settings: ApiSettings, telemetry: HttpTelemetry) -> None:
    """The one layer every request passes first (ipt_api/edge.py; README, "Input limits")."""

    async def authenticate(request: Request) -> object:
        return await get_principal(request, settings)

    app.add_middleware(
        Edge,
        telemetry=telemetry,
        max_body_bytes=settings.max_body_bytes,
        authenticate=authenticate,
        render_error=render_error,
    )
