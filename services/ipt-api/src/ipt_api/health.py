"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from ipt_api.errors import outage_log
from ipt_core.db.faults import database_fault

__all__ = ["health_router", "prometheus_metrics"]

health_router = APIRouter(tags=["Operations"])
_READY_TIMEOUT_S: Final = 2.0  # below the chart's probe timeout: answer 503, never hang


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
    """Answer 200 when a database round trip succeeds, else 503 (taken out of rotation).

    It recovers by itself: the pool replaces broken connections, so the first probe after the
    database is back answers 200 again.
    """
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            async with request.app.state.database.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not ready", never a crash of the probe
        outage_log(request).failed(database_fault(error) or type(error).__name__)
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable"}, 503, {"Retry-After": "2"}
        )
    outage_log(request).recovered()
    return JSONResponse({"status": "ok", "database": "ok"})


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition of the process's metrics (labels are route templates, no ids)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
