"""/metrics must not grow a series per client-supplied `Host` (README, "Input limits")."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from ipt_core.telemetry import meter_provider
from tests.support.api import api_settings


async def test_forged_hosts_add_no_series(db: AsyncEngine) -> None:
    reader = InMemoryMetricReader()
    app = create_app(api_settings(), database=Database(db), meter_provider=meter_provider([reader]))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for n in range(20):
                await http.get("/fhir/Patient/x", headers={"Host": f"forged-{n}.example"})
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        (metric.name, dict(point.attributes or {}))
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name.startswith("http.server")
        for point in metric.data.data_points
    ]
    assert points, "the HTTP server metrics were not recorded"
    assert "forged-" not in repr(points)
    durations = [attributes for name, attributes in points if "duration" in name]
    assert len(durations) == 1, durations  # one series: same route, method and status
