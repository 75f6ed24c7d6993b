"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

__all__ = ["health_router", "prometheus_metrics"]

health_router = APIRouter(tags=["Operations"])


@health_router.get("/healthz", summary="Liveness: the process is serving requests")
async def healthz() -> dict[str, str]:
    """Answer as long as the event loop runs; no dependency is checked."""
    return {"status": "ok"}


@health_router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses={503: {"description": "The database is unreachable"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Answer 200 when a database round trip succeeds, else 503 (taken out of rotation)."""
    try:
        async with request.app.state.database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready", never a crash of the probe
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition of the process's metrics (labels are route templates, no ids)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
