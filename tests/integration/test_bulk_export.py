"""FHIR Bulk Data `$export` as a Bulk Data client uses it: plain HTTP against a real server.

The API runs under uvicorn with SMART token checks on; the worker's `Exporter` runs in the
test. Every NDJSON line is checked by the independent R4 validator (fhirkit).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_api.demo import seed_demo
from ipt_core.fhir.bulk import bulk_load
from ipt_worker.exports import Exporter
from tests.support.api import served
from tests.support.fhir_validator import FhirBodyChecker
from tests.support.network import free_port
from tests.support.tokens import jwt_api_settings, signed_token
from tests.support.waiting import poll_until
from tests.support.worker import running_worker

ISSUER = "https://idp.bulk.example"
AUDIENCE = "https://ipt.bulk.example/fhir"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
Mint = Callable[..., str]


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> Mint:
    def make(sub: str = "client-a", scope: str = "system/*.read") -> str:
        return signed_token(
            signing_key, ISSUER, AUDIENCE, sub, scope, expires_in=600, algorithm="RS256"
        )

    return make


@pytest.fixture
def server(
    db: AsyncEngine, database_url: str, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> Iterator[str]:
    """The API under uvicorn on a free port, checking tokens; returns its FHIR base URL."""
    port = free_port()
    settings = jwt_api_settings(
        signing_key,
        tmp_path,
        issuer=ISSUER,
        audience=AUDIENCE,
        database_url=database_url.replace("+asyncpg", ""),
        api_port=port,
        export_retry_after_s=1,
    )
    with served(create_app(settings), port):
        yield f"http://127.0.0.1:{port}/fhir"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def caseload(db: AsyncEngine) -> None:
    await seed_demo(db, now=lambda: datetime(2026, 11, 20, 15, 30, tzinfo=UTC))


def exporter(db: AsyncEngine, **options: Any) -> Exporter:
    return Exporter(db, clock=lambda: datetime.now(UTC), **options)


async def kick_off(http: httpx.AsyncClient, url: str, token: str, **params: str) -> str:
    response = await http.get(url, params=params, headers={**ASYNC, **auth(token)})
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


async def finished_manifest(
    http: httpx.AsyncClient, db: AsyncEngine, status_url: str, token: str
) -> dict[str, Any]:
    await exporter(db).run_once()
    response = await http.get(status_url, headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    manifest: dict[str, Any] = response.json()
    return manifest


async def download(http: httpx.AsyncClient, url: str, token: str) -> list[dict[str, Any]]:
    """Download one NDJSON file; every line must be valid R4."""
    response = await http.get(url, headers={**auth(token), "Accept": "application/fhir+ndjson"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    checker = FhirBodyChecker()
    lines = response.content.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    for line in lines[:-1]:
        checker.check_body(url, "application/fhir+json", line)
    assert checker.problems == []
    return [orjson.loads(line) for line in lines[:-1]]


async def all_files(
    http: httpx.AsyncClient, manifest: dict[str, Any], token: str
) -> dict[str, list[dict[str, Any]]]:
    files = {}
    for output in manifest["output"]:
        resources = await download(http, output["url"], token)
        assert len(resources) == output["count"]
        assert {r["resourceType"] for r in resources} == {output["type"]}
        files[output["type"]] = resources
    return files


async def stored_ids(db: AsyncEngine, where: str = "TRUE", **params: Any) -> dict[str, set[str]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT resource_type, id FROM resource WHERE NOT deleted AND {where}"), params
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row.resource_type, set()).add(row.id)
        return found


def ids(files: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    return {t: {r["id"] for r in resources} for t, resources in files.items()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_kick_off_poll_download_and_delete(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    token = mint()
    status_url = await kick_off(
        http, f"{server}/$export", token, _outputFormat="application/fhir+ndjson"
    )
    assert status_url.startswith(f"{server}/$export-status/")
    waiting = await http.get(status_url, headers=auth(token))
    assert waiting.status_code == 202
    assert "0 resources" in waiting.headers["X-Progress"]
    assert waiting.headers["Retry-After"] == "1"

    manifest = await finished_manifest(http, db, status_url, token)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == f"{server}/$export?_outputFormat=application%2Ffhir%2Bndjson"
    assert manifest["error"] == []
    assert datetime.fromisoformat(manifest["transactionTime"]) <= datetime.now(UTC)
    files = await all_files(http, manifest, token)
    stored = await stored_ids(db)
    assert ids(files) == stored  # every current resource, once
    assert sum(len(v) for v in files.values()) == sum(len(v) for v in stored.values())

    assert (await http.delete(status_url, headers=auth(token))).status_code == 202
    assert (await http.get(status_url, headers=auth(token))).status_code == 404
    gone = await http.get(manifest["output"][0]["url"], headers=auth(token))
    assert gone.status_code == 404
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM bulk_export_chunk")) == 0


async def test_since_type_and_type_filter_narrow_the_export(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    token = mint(scope="system/Patient.rs system/Observation.rs")
    async with db.begin() as conn:  # one patient changes after the cut-off
        since = datetime.now(UTC) + timedelta(seconds=1)
        changed = await conn.scalar(
            text(
                "UPDATE resource SET last_updated = :later WHERE resource_type = 'Patient' "
                "AND id = (SELECT min(id) FROM resource WHERE resource_type = 'Patient') "
                "RETURNING id"
            ),
            {"later": since + timedelta(milliseconds=1)},
        )
    await asyncio.sleep(1.1)  # the kick-off (transaction time) comes after the change
    status_url = await kick_off(
        http, f"{server}/$export", token, _type="Patient,Observation", _since=since.isoformat()
    )
    files = await all_files(http, await finished_manifest(http, db, status_url, token), token)
    assert ids(files) == {"Patient": {changed}}

    totals = await kick_off(
        http,
        f"{server}/$export",
        token,
        _type="Observation",
        _typeFilter="Observation?code=http://loinc.org|44261-6&value-quantity=lt10",
    )
    files = await all_files(http, await finished_manifest(http, db, totals, token), token)
    assert files["Observation"]
    assert all(r["valueInteger"] < 10 for r in files["Observation"])
    assert len(files["Observation"]) < len((await stored_ids(db))["Observation"])


async def test_patient_and_group_exports_hold_patient_compartments(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    token = mint()
    status_url = await kick_off(http, f"{server}/Patient/$export", token)
    files = ids(await all_files(http, await finished_manifest(http, db, status_url, token), token))
    everything = await stored_ids(db)
    assert "Practitioner" not in files
    assert files["Patient"] == everything["Patient"]
    assert files["CarePlan"] == everything["CarePlan"]

    async with db.connect() as conn:
        therapist = await conn.scalar(text("SELECT min(therapist_ref) FROM ipt_course"))
        patients = set(
            (
                await conn.execute(
                    text("SELECT patient_id FROM ipt_course WHERE therapist_ref = :t"),
                    {"t": therapist},
                )
            ).scalars()
        )
    group = "ipt-therapist-" + therapist.removeprefix("Practitioner/")
    status_url = await kick_off(http, f"{server}/Group/{group}/$export", token)
    files = ids(await all_files(http, await finished_manifest(http, db, status_url, token), token))
    assert files["Patient"] == patients
    assert patients < everything["Patient"]
    careplans = await stored_ids(
        db,
        "resource_type = 'CarePlan' AND id IN (SELECT id FROM ipt_course WHERE therapist_ref = :t)",
        t=therapist,
    )
    assert files["CarePlan"] >= careplans["CarePlan"]
    unknown = await http.get(f"{server}/Group/nobody/$export", headers={**ASYNC, **auth(token)})
    assert unknown.status_code == 404


async def test_a_killed_worker_is_resumed_from_its_checkpoint(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    token = mint()
    status_url = await kick_off(http, f"{server}/$export", token)
    lease = timedelta(seconds=1)
    killed = exporter(db, page_size=7, lease=lease)
    assert await killed.run_once(max_steps=4)  # then it dies: its lease stays behind
    progress = await http.get(status_url, headers=auth(token))
    assert progress.status_code == 202
    done_before_kill = int(progress.headers["X-Progress"].split()[0])
    total = sum(len(v) for v in (await stored_ids(db)).values())
    assert 0 < done_before_kill < total

    successor = exporter(db, page_size=7, lease=lease)
    assert not await successor.run_once()  # the lease still holds
    await asyncio.sleep(1.1)
    assert await successor.run_once()
    assert await killed.run_once() is False  # nothing left for the dead worker to take
    response = await http.get(status_url, headers=auth(token))
    assert response.status_code == 200
    files = await all_files(http, response.json(), token)
    resources = [r for rs in files.values() for r in rs]
    assert len(resources) == len({(r["resourceType"], r["id"]) for r in resources})  # no repeats
    assert ids(files) == await stored_ids(db)  # nothing lost


async def test_another_clients_export_is_not_found(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    owner, other = mint("client-a"), mint("client-b")
    status_url = await kick_off(http, f"{server}/$export", owner, _type="Patient")
    manifest = await finished_manifest(http, db, status_url, owner)
    file_url = manifest["output"][0]["url"]
    assert (await http.get(status_url, headers=auth(other))).status_code == 404
    assert (await http.get(file_url, headers=auth(other))).status_code == 404
    assert (await http.delete(status_url, headers=auth(other))).status_code == 404
    assert (await http.get(file_url)).status_code == 401
    assert (await http.get(file_url, headers=auth(owner))).status_code == 200


async def test_bad_kick_offs_are_refused_with_operation_outcomes(
    server: str, http: httpx.AsyncClient, mint: Mint, caseload: None
) -> None:
    token = mint()
    cases = [
        ({"Authorization": f"Bearer {token}"}, "", 400),  # no Prefer: respond-async
        (ASYNC, "?_outputFormat=text/csv", 400),
        (ASYNC, "?_type=Basic", 400),
        (ASYNC, "?_since=yesterday", 400),
        (ASYNC, "?_typeFilter=Observation?nonsense=1", 400),
        (ASYNC, "?_elements=id", 400),
    ]
    for headers, query, status in cases:
        response = await http.get(f"{server}/$export{query}", headers={**auth(token), **headers})
        assert response.status_code == status, (query, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    user_scoped = await http.get(
        f"{server}/$export", headers={**ASYNC, **auth(mint(scope="user/*.read"))}
    )
    assert user_scoped.status_code == 403
    partial = await http.get(
        f"{server}/$export", headers={**ASYNC, **auth(mint(scope="system/Patient.read"))}
    )
    assert partial.status_code == 403
    posted = await http.post(
        f"{server}/Patient/$export",
        headers={**ASYNC, **auth(token), "Content-Type": "application/fhir+json"},
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "_type", "valueString": "Patient"}],
        },
    )
    assert posted.status_code == 202


async def test_a_worker_process_killed_mid_export_is_resumed_by_another(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, database_url: str, mint: Mint
) -> None:
    """A real `ipt-worker` process is SIGKILLed mid-export; a second one finishes it."""
    async with db.begin() as conn:
        await bulk_load(conn, generated(6000), now=datetime.now(UTC), validate=False)
    token = mint()
    status_url = await kick_off(http, f"{server}/$export", token)
    with export_worker(database_url) as doomed:
        await poll_until(lambda: exported_so_far(db, lambda n: n > 0), within_s=60, what="a chunk")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    progress = await http.get(status_url, headers=auth(token))
    assert progress.status_code == 202, "the worker finished before it could be killed"
    with export_worker(database_url):
        await poll_until(lambda: finished(http, status_url, token), within_s=120, what="the export")
    response = await http.get(status_url, headers=auth(token))
    files = await all_files(http, response.json(), token)
    resources = [r for rs in files.values() for r in rs]
    assert len(resources) == len({(r["resourceType"], r["id"]) for r in resources}) == 6000


def export_worker(database_url: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
    settings = {
        "IPT_EXPORT_PAGE_SIZE": "10",
        "IPT_EXPORT_LEASE_S": "5",
        "IPT_EXPORT_POLL_INTERVAL_S": "0.1",
        "IPT_EVENT_PUBLISHERS": "log",
    }
    return running_worker(database_url, settings)


async def exported_so_far(db: AsyncEngine, accept: Callable[[int], bool]) -> bool:
    async with db.connect() as conn:
        count = await conn.scalar(text("SELECT coalesce(max(exported), 0) FROM bulk_export"))
    return accept(int(count or 0))


async def finished(http: httpx.AsyncClient, status_url: str, token: str) -> bool:
    return (await http.get(status_url, headers=auth(token))).status_code == 200


def generated(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {"resourceType": "Patient", "id": f"p{n:06d}", "gender": "female"}


async def test_the_capability_statement_announces_export(
    server: str, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{server}/metadata")
    checker = FhirBodyChecker()
    checker.check_body("metadata", "application/fhir+json", response.content)
    assert checker.problems == []
    statement = response.json()
    assert (
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    )
    rest = statement["rest"][0]
    assert {o["name"] for o in rest["operation"]} == {"export"}
    entries = {r["type"]: r for r in rest["resource"]}
    patient = {o["definition"].rsplit("/", 1)[1] for o in entries["Patient"]["operation"]}
    assert "patient-export" in patient
    assert entries["Group"]["operation"][0]["definition"].endswith("/group-export")


async def test_kick_offs_leave_audit_events_allowed_and_refused(
    server: str, http: httpx.AsyncClient, db: AsyncEngine, mint: Mint, caseload: None
) -> None:
    allowed = await http.get(
        f"{server}/$export?_type=Observation", headers={**ASYNC, **auth(mint("client-a"))}
    )
    refused = await http.get(
        f"{server}/$export?_type=Observation",
        headers={**ASYNC, **auth(mint("client-b", scope="user/*.read"))},
    )
    assert (allowed.status_code, refused.status_code) == (202, 403)

    async def exports_audited() -> list[tuple[str, int]]:
        async with db.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT agent, outcome FROM audit_event WHERE subtype = 'operation' "
                    "AND entity_type = 'Observation' ORDER BY agent"
                )
            )
            return [(row.agent, row.outcome) for row in rows]

    # Reads are audited in batches (about every second): wait for both records.
    records = await poll_until(
        exports_audited, until=lambda found: len(found) == 2, within_s=15, what="audit records"
    )
    assert records == [("client-a", 0), ("client-b", 4)]
