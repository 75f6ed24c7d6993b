"""Helpers of the EHR sync tests: a real sekmet-fhir EHR, a recording/faulty proxy transport,
fast timings, and passes that run the push or pull to the end.

The proxy is an httpx transport in front of the real server (it forwards over the network):
it records every request and can answer in the EHR's place (429, 503, resets, timeouts, 412)
or rewrite what the EHR says (its CapabilityStatement, its version ids, 410 → 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr.endpoints import EhrEndpoint, parse_endpoints
from ipt_core.ehr.identifiers import SYNC_SOURCE
from ipt_core.net.destinations import DestinationPolicy
from ipt_worker.ehr import EhrTiming, EndpointSync, open_endpoint, push_due
from ipt_worker.ehr.loop import register_endpoints
from tests.integration import ipt_helpers
from tests.integration.events_support import LOOPBACK_ALLOWED
from tests.support.sekmet import Sekmet, running_sekmet

__all__ = [
    "LOOPBACK_EHR",
    "MRN_SYSTEM",
    "FaultPlan",
    "ProxyTransport",
    "Seen",
    "ehr_endpoint",
    "ehr_patient",
    "fast_timing",
    "pending_items",
    "phq9",
    "push_until_empty",
    "remote_by_sync_id",
    "sekmet",
    "synced_endpoint",
]

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    """One real sekmet-fhir server per test session (each test uses its own patients)."""
    with running_sekmet(Path(tmp_path_factory.mktemp("ehr"))) as server:
        yield server


def ehr_endpoint(base_url: str, name: str = "sekmet", **changes: Any) -> EhrEndpoint:
    """An endpoint entry for `base_url`, validated like the endpoints file."""
    entry: dict[str, Any] = {
        "name": name,
        "base_url": base_url,
        "auth": {"type": "none"},
        "patient_identifier_system": MRN_SYSTEM,
        "pull_interval_s": 1,
        "max_requests_per_s": 1000,
    }
    entry.update(changes)
    return parse_endpoints({"endpoints": [entry]}, {})[0]


def fast_timing(**changes: Any) -> EhrTiming:
    """Short timeouts and backoff, so fault tests take fractions of a second."""
    values: dict[str, Any] = {
        "timeout_s": 2.0,
        "attempts": 4,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.4,
        "poll_interval_s": 0.05,
        "batch_size": 50,
        "concurrency": 1,  # fault tests count requests in order; the e2e test uses several
        "lease_s": 30,
        "page_size": 2,  # small pages: the pull follows `next` links
    }
    values.update(changes)
    return EhrTiming(**values)


def ehr_patient(server: Sekmet, mrn: str) -> str:
    """Create the EHR's Patient with identifier `mrn`; return its EHR id."""
    with server.client() as http:
        body = {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"family": "Rivera", "given": ["Alex"]}],
        }
        response = http.post("/Patient", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def remote_by_sync_id(server: Sekmet, resource_type: str, local_ref: str) -> list[dict[str, Any]]:
    """The EHR's resources carrying our sync identifier `local_ref` (`Type/id`)."""
    with server.client() as http:
        response = http.get(
            f"/{resource_type}",
            params={"identifier": f"{SYNC_SOURCE}|{local_ref}", "_count": "100"},
            headers={"Prefer": "handling=strict"},
        )
        assert response.status_code == 200, response.text
        return [e["resource"] for e in response.json().get("entry", [])]


@dataclass
class Seen:
    """One request that reached the proxy."""

    method: str
    path: str
    at: float  # time.monotonic()
    status: int | None = None  # None: the proxy answered with a network error


# Given the request and how many requests came before it, a reply in the EHR's place (a
# Response, or an exception to raise), or None to forward it.
FaultPlan = Callable[[httpx.Request, int], httpx.Response | Exception | None]


@dataclass
class ProxyTransport(httpx.AsyncBaseTransport):
    """Forwards to the real EHR; records, injects faults, rewrites responses."""

    fault: FaultPlan | None = None
    rewrite: Callable[[httpx.Request, httpx.Response, bytes], httpx.Response] | None = None
    seen: list[Seen] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer `request` as the plan says, or forward it."""
        record = Seen(request.method, request.url.path, time.monotonic())
        self.seen.append(record)
        planned = self.fault(request, len(self.seen) - 1) if self.fault else None
        if isinstance(planned, Exception):
            raise planned
        if planned is not None:
            record.status = planned.status_code
            return planned
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        record.status = response.status_code
        if self.rewrite is not None:
            return self.rewrite(request, response, body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        """Close the forwarding transport."""
        await self.inner.aclose()

    def writes(self) -> list[Seen]:
        """The POST, PUT, PATCH and DELETE requests seen."""
        return [s for s in self.seen if s.method in {"POST", "PUT", "PATCH", "DELETE"}]


# The local EHR listens on loopback, which the guard allows only when listed.
LOOPBACK_EHR = DestinationPolicy.parse(LOOPBACK_ALLOWED)


@contextlib.asynccontextmanager
async def synced_endpoint(
    db: AsyncEngine,
    endpoint: EhrEndpoint,
    transport: httpx.AsyncBaseTransport | None = None,
    timing: EhrTiming | None = None,
    destinations: DestinationPolicy = LOOPBACK_EHR,
) -> AsyncIterator[EndpointSync]:
    """The endpoint registered (so writes queue push work) with its capabilities read.

    The local EHR listens on loopback, which the destination guard allows only when listed
    (`destinations`, as `IPT_OUTBOUND_ALLOW` would).
    """
    await register_endpoints(db, [endpoint])
    async with open_endpoint(
        db,
        endpoint,
        write_listeners(),
        timing or fast_timing(),
        destinations=destinations,
        transport=transport,
    ) as sync:
        await sync.refresh_capabilities(time.monotonic())
        yield sync


async def pending_items(db: AsyncEngine, status: str = "pending") -> list[Any]:
    """The push items in `status`."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM ehr_push_item WHERE status = :status ORDER BY id"),
            {"status": status},
        )
        return list(rows)


async def push_until_empty(sync: EndpointSync, db: AsyncEngine, timeout_s: float = 20) -> None:
    """Push until no item is pending (items waiting out a backoff are waited for)."""
    deadline = time.monotonic() + timeout_s
    while await pending_items(db):
        assert time.monotonic() < deadline, "push items still pending"
        if await push_due(sync) == 0:
            await asyncio.sleep(0.02)


def phq9(patient_id: str, score: int, day: int, month: int = 2) -> dict[str, Any]:
    """A PHQ-9 total of `score` for the EHR's `patient_id`, taken on 2026-`month`-`day`."""
    when = f"2026-{month:02d}-{day:02d}T10:00:00Z"
    return ipt_helpers.phq9(f"Patient/{patient_id}", when, score)
