"""EHR sync throughput against a local sekmet-fhir EHR: push and pull, in resources per second.

A throwaway embedded PostgreSQL and a real sekmet-fhir server (installed by `make install`
into .tools/sekmet). Push: PHQ-9 Observations written through the FHIR store (so the write
listener queues them) are pushed by the push loop with conditional update on our sync
identifier. Pull: PHQ-9 Observations created in the EHR are pulled page by page (following
`next` links) and written through our store. Run:
`python -m bench.ehr_bench [--push N] [--pull N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.ehr.endpoints import parse_endpoints
from ipt_core.fhir.store import ResourceStore
from ipt_core.net.destinations import DestinationPolicy
from ipt_worker.ehr import EhrTiming, open_endpoint, pull_once, push_due, register_endpoints
from tests.support.sekmet import running_sekmet

_DATA = Path(".bench") / "pg-ehr"
_MRN = "urn:oid:2.16.840.1.113883.19.5"


def main() -> None:
    """Measure push and pull throughput."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--push", type=int, default=300, help="Observations to push")
    parser.add_argument("--pull", type=int, default=300, help="Observations to pull")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, running_sekmet(Path(directory)) as ehr:
        asyncio.run(_main(ehr.base_url, args.push, args.pull))


def _phq9(patient_ref: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": f"2026-02-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "valueInteger": n % 28,
    }


async def _main(base_url: str, push: int, pull: int) -> None:
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    engine = create_engine(cluster.start().url("postgres"), pool_size=8)
    try:
        await upgrade(engine)
        endpoint = parse_endpoints(
            {
                "endpoints": [
                    {
                        "name": "bench",
                        "base_url": base_url,
                        "auth": {"type": "none"},
                        "patient_identifier_system": _MRN,
                        "max_requests_per_s": 10_000,
                    }
                ]
            },
            {},
        )[0]
        await register_endpoints(engine, [endpoint])
        remote_patient = _ehr_patient(base_url)
        patient_id = await _patient(engine)
        timing = EhrTiming(batch_size=100, page_size=100)
        loopback = DestinationPolicy.parse(["127.0.0.1/32"])  # the local EHR
        async with open_endpoint(
            engine, endpoint, write_listeners(), timing, destinations=loopback
        ) as sync:
            await sync.refresh_capabilities(time.monotonic())
            await _write_scores(engine, patient_id, push)
            started = time.perf_counter()
            pushed = 0
            while claimed := await push_due(sync):
                pushed += claimed
            elapsed = time.perf_counter() - started
            print(f"push: {pushed} Observations in {elapsed:.2f} s = {pushed / elapsed:.0f}/s")

            _ehr_scores(base_url, remote_patient, pull)
            await _open_course(engine, patient_id)
            started = time.perf_counter()
            counts = await pull_once(sync)
            elapsed = time.perf_counter() - started
            print(
                f"pull: {counts.stored} Observations stored in {elapsed:.2f} s = "
                f"{counts.stored / elapsed:.0f}/s (skipped our own {counts.skipped})"
            )
    finally:
        await engine.dispose()
        cluster.stop()


def _ehr_patient(base_url: str) -> str:
    body = {"resourceType": "Patient", "identifier": [{"system": _MRN, "value": "BENCH-1"}]}
    response = httpx.post(f"{base_url}/Patient", json=body, timeout=30)
    response.raise_for_status()
    return str(response.json()["id"])


def _ehr_scores(base_url: str, remote_patient: str, count: int) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for n in range(count):
            http.post("/Observation", json=_phq9(f"Patient/{remote_patient}", n)).raise_for_status()


async def _patient(engine: AsyncEngine) -> str:
    async with engine.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners())
        body = {"resourceType": "Patient", "identifier": [{"system": _MRN, "value": "BENCH-1"}]}
        return (await store.create("Patient", body)).stored.id


async def _write_scores(engine: AsyncEngine, patient_id: str, count: int) -> None:
    async with engine.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners())
        for n in range(count):
            await store.create("Observation", _phq9(f"Patient/{patient_id}", n))


async def _open_course(engine: AsyncEngine, patient_id: str) -> None:
    # The pull reads which patients have open courses from the course projection; a bare row
    # is enough here (the benchmark measures the sync, not enrolment).
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ipt_course (id, patient_id, status, course_type, problem_areas, "
                "recurrent) VALUES ('bench-course', :patient, 'active', 'acute', '{}', false)"
            ),
            {"patient": patient_id},
        )


if __name__ == "__main__":
    main()
