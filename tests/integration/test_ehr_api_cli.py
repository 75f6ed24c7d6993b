"""`/ipt/v1/ehr` (endpoints without secrets, status, dead letters and retry) and `ipt ehr`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_api.cli import main
from ipt_core.db.provision import Database
from ipt_core.ehr import repository as repo
from ipt_core.ehr.endpoints import parse_endpoints
from tests.integration.ehr_support import MRN_SYSTEM, ehr_patient, phq9, remote_by_sync_id
from tests.integration.events_support import LOOPBACK_ALLOWED
from tests.support.api import api_settings
from tests.support.sekmet import Sekmet

ENDPOINTS = {
    "endpoints": [
        {
            "name": "epic-prod",
            "base_url": "https://ehr.example.org/fhir/R4",
            "auth": {"type": "bearer", "token_env": "EPIC_TOKEN"},
            "patient_identifier_system": MRN_SYSTEM,
        }
    ]
}


@pytest.fixture
async def api(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    endpoints = parse_endpoints(ENDPOINTS, {"EPIC_TOKEN": "top-secret-token"})
    app = create_app(api_settings(), database=Database(db), ehr_endpoints=endpoints)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_endpoints_are_listed_without_secrets(api: httpx.AsyncClient) -> None:
    response = await api.get("/ipt/v1/ehr/endpoints")
    assert response.status_code == 200
    assert "top-secret-token" not in response.text
    [endpoint] = response.json()
    assert endpoint["name"] == "epic-prod"
    assert endpoint["auth"] == {"type": "bearer", "token_env": "EPIC_TOKEN"}
    assert endpoint["push"] == ["Observation", "Encounter", "CarePlan", "Goal", "DocumentReference"]


async def test_status_dead_letters_and_retry(api: httpx.AsyncClient, db: AsyncEngine) -> None:
    now = datetime.now(UTC)
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    async with db.begin() as conn:
        for id_ in ("a", "b"):
            await repo.enqueue_push(
                conn,
                kind="resource",
                resource_type="Observation",
                resource_id=id_,
                push_type="Observation",
                now=now,
            )
        [item, _] = await repo.claim_push_items(conn, "epic-prod", now, now - now, 10)
        await repo.dead_letter(conn, item, "rejected: http-422", outcome, now)

    status = (await api.get("/ipt/v1/ehr/endpoints/epic-prod/status")).json()
    assert (status["queue_depth"], status["dead_letters"]) == (1, 1)
    letters = (await api.get("/ipt/v1/ehr/endpoints/epic-prod/dead-letters")).json()
    assert letters[0]["resource"] == "Observation/a"
    assert letters[0]["operation_outcome"] == outcome

    retried = await api.post(f"/ipt/v1/ehr/endpoints/epic-prod/dead-letters/{item.id}/retry")
    assert retried.status_code == 202
    status = (await api.get("/ipt/v1/ehr/endpoints/epic-prod/status")).json()
    assert (status["queue_depth"], status["dead_letters"]) == (2, 0)
    again = await api.post(f"/ipt/v1/ehr/endpoints/epic-prod/dead-letters/{item.id}/retry")
    assert again.status_code == 404
    assert again.json()["resourceType"] == "OperationOutcome"
    unknown = await api.get("/ipt/v1/ehr/endpoints/nope/status")
    assert unknown.status_code == 404


async def test_the_commands_sync_and_report(
    db: AsyncEngine, database_url: str, sekmet: Sekmet, tmp_path: Path
) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        f"  - {{name: local, base_url: '{sekmet.base_url}', auth: {{type: none}},\n"
        f"     patient_identifier_system: '{MRN_SYSTEM}'}}\n"
    )
    env = {
        "DATABASE_URL": database_url,
        "IPT_EHR_ENDPOINTS_FILE": str(path),
        "IPT_OUTBOUND_ALLOW": ",".join(LOOPBACK_ALLOWED),  # the local EHR is on loopback
    }
    runner = CliRunner()
    synced = await asyncio.to_thread(runner.invoke, main, ["ehr", "sync"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "local: 0 still queued, 0 dead letters" in synced.output
    assert "local: pulled 0" in synced.output
    status = await asyncio.to_thread(runner.invoke, main, ["ehr", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert "pushes Observation, Encounter, CarePlan, DocumentReference" in status.output

    path.write_text("endpoints:\n  - {name: local, base_url: nowhere}\n")
    bad = await asyncio.to_thread(runner.invoke, main, ["ehr", "status"], env=env)
    assert bad.exit_code == 1
    assert "endpoints[0] (local): field base_url" in bad.output


async def test_the_api_process_syncs_on_its_own(
    db: AsyncEngine, sekmet: Sekmet, tmp_path: Path
) -> None:
    """`make run`: with endpoints configured, the embedded worker pushes with no other step."""
    ehr_patient(sekmet, "MRN-RUN-1")
    endpoints = parse_endpoints(
        {
            "endpoints": [
                {
                    "name": "local",
                    "base_url": sekmet.base_url,
                    "auth": {"type": "none"},
                    "patient_identifier_system": MRN_SYSTEM,
                }
            ]
        },
        {},
    )
    settings = api_settings(run_worker=True, outbound_allow=LOOPBACK_ALLOWED)
    app = create_app(settings, database=Database(db), ehr_endpoints=endpoints)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            patient = {
                "resourceType": "Patient",
                "identifier": [{"system": MRN_SYSTEM, "value": "MRN-RUN-1"}],
            }
            created = await http.post("/fhir/Patient", json=patient)
            assert created.status_code == 201, created.text
            score = phq9(created.json()["id"], 11, 3)
            written = await http.post("/fhir/Observation", json=score)
            assert written.status_code == 201, written.text
            ref = f"Observation/{written.json()['id']}"
            deadline = asyncio.get_running_loop().time() + 30
            while not await asyncio.to_thread(remote_by_sync_id, sekmet, "Observation", ref):
                assert asyncio.get_running_loop().time() < deadline, "not pushed"
                await asyncio.sleep(0.2)


@pytest.mark.parametrize("command", [["ipt-worker"], ["ipt", "serve"]])
def test_a_bad_endpoints_file_stops_the_process_at_start(
    command: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        "  - name: epic-prod\n"
        "    base_url: https://ehr.example.org/fhir\n"
        "    auth: {type: smart-backend, client_id: c, kid: k, scopes: x}\n"
        "    patient_identifier_system: urn:x\n"
    )
    env = {
        **os.environ,
        "IPT_EHR_ENDPOINTS_FILE": str(path),
        "IPT_AUTH_MODE": "disabled",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    }
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / command[0]), *command[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "endpoints[0] (epic-prod): field auth.key_env" in result.stderr
