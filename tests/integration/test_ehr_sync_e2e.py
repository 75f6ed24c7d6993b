"""EHR sync end to end against a real third-party FHIR server (sekmet-fhir).

The EHR's Patient exists first (matched by identifier). A course enrolled through /ipt/v1
with two sessions and their PHQ-9 is pushed; an Encounter and a PHQ-9 Observation created in
the EHR are pulled and count in the course's status; a second sync sends nothing; a push
replayed after a simulated crash makes no duplicate in the EHR.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr.identifiers import SYNC_SOURCE, ehr_identifier_system
from ipt_core.ehr.listener import RESOURCE_KIND
from ipt_core.ehr.repository import enqueue_push
from ipt_worker.ehr import pull_once
from ipt_worker.recompute import Recomputer
from tests.integration.ehr_support import (
    MRN_SYSTEM,
    ProxyTransport,
    ehr_endpoint,
    ehr_patient,
    fast_timing,
    pending_items,
    phq9,
    push_until_empty,
    remote_by_sync_id,
    synced_endpoint,
)
from tests.integration.ipt_helpers import IPT, enrol, enrolment, record
from tests.support.database import query_rows
from tests.support.sekmet import Sekmet


async def recompute_all(db: AsyncEngine) -> None:
    recomputer = Recomputer(db, clock=lambda: datetime.now(UTC), listeners=write_listeners())
    try:
        while await recomputer.run_once():
            pass
    finally:
        await recomputer.close()  # releases its liveness connection


async def enrol_with_sessions(client: httpx.AsyncClient, mrn: str) -> str:
    body = enrolment("Patient/x")
    body["patient"] = {
        "identifier": {"system": MRN_SYSTEM, "value": mrn},
        "family": "Rivera",
        "given": ["Alex"],
    }
    course_id = await enrol(client, body)
    await record(client, course_id, start="2026-01-12T09:00:00Z", phq9={"total": 15, "item9": 0})
    await record(client, course_id, start="2026-01-19T09:00:00Z", phq9={"total": 12, "item9": 0})
    return course_id


def ehr_session(server: Sekmet, patient_id: str) -> tuple[str, str]:
    """An IPT Encounter and a PHQ-9 Observation recorded in the EHR; their EHR ids."""
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [IPT]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": "2026-01-26T09:00:00Z", "end": "2026-01-26T10:00:00Z"},
    }
    with server.client() as http:
        created = http.post("/Encounter", json=encounter)
        assert created.status_code == 201, created.text
        encounter_id = created.json()["id"]
        observation = phq9(patient_id, 9, day=26, month=1)
        observation["encounter"] = {"reference": f"Encounter/{encounter_id}"}
        created = http.post("/Observation", json=observation)
        assert created.status_code == 201, created.text
        return str(encounter_id), str(created.json()["id"])


async def local_refs(db: AsyncEngine, resource_type: str) -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM resource WHERE resource_type = :t AND NOT deleted ORDER BY id"),
            {"t": resource_type},
        )
        return [f"{resource_type}/{row.id}" for row in rows]


async def course_status(db: AsyncEngine, course_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        status = await conn.scalar(
            text("SELECT status FROM course_status WHERE course_id = :id"), {"id": course_id}
        )
    assert isinstance(status, dict)
    return status


async def test_push_pull_resync_and_crash_replay(
    ipt: httpx.AsyncClient, db: AsyncEngine, sekmet: Sekmet
) -> None:
    ehr_patient_id = ehr_patient(sekmet, "MRN-E2E-1")
    proxy = ProxyTransport()
    endpoint = ehr_endpoint(sekmet.base_url)
    async with synced_endpoint(db, endpoint, proxy, fast_timing(concurrency=4)) as sync:
        course_id = await enrol_with_sessions(ipt, "MRN-E2E-1")
        await recompute_all(db)
        await push_until_empty(sync, db)

        # Pushed: the course, its goals, both session Encounters and the three PHQ-9 scores,
        # each once, on the EHR's patient, with our sync identifier.
        careplans = remote_by_sync_id(sekmet, "CarePlan", f"CarePlan/{course_id}")
        assert len(careplans) == 1
        assert careplans[0]["subject"]["reference"] == f"Patient/{ehr_patient_id}"
        for kind in ("Observation", "Encounter"):
            refs = await local_refs(db, kind)
            assert refs, kind
            for ref in refs:
                copies = remote_by_sync_id(sekmet, kind, ref)
                assert len(copies) == 1, (kind, ref, copies)
                assert copies[0]["subject"]["reference"] == f"Patient/{ehr_patient_id}"
        assert len(await local_refs(db, "Observation")) == 3  # baseline + two sessions
        # References between pushed resources point at the EHR's ids.
        # sekmet's CapabilityStatement offers no Goal: Goals are not pushed, the CarePlan's goal
        # references keep their display only, and nothing is dead-lettered for it.
        assert "Goal" not in sync.push_types()
        assert all("reference" not in goal for goal in careplans[0]["goal"])
        assert await pending_items(db, "dead") == []

        # Pulled: an Encounter and a PHQ-9 score recorded in the EHR.
        encounter_id, _ = ehr_session(sekmet, ehr_patient_id)
        counts = await pull_once(sync)
        assert counts.stored == 2, counts
        async with db.connect() as conn:
            pulled = await conn.execute(
                text(
                    "SELECT r.resource_type, r.id, s.course_id, r.content FROM resource r "
                    "LEFT JOIN ipt_session s ON s.resource_type = r.resource_type "
                    "AND s.resource_id = r.id WHERE r.content::jsonb -> 'meta' ->> 'source' "
                    "LIKE :source"
                ),
                {"source": f"{sekmet.base_url}/%"},
            )
            by_type = {row.resource_type: row for row in pulled}
        assert set(by_type) == {"Encounter", "Observation"}
        assert by_type["Encounter"].course_id == course_id  # auto-linked to the course
        score = json.loads(by_type["Observation"].content)
        assert score["encounter"]["reference"] == f"Encounter/{by_type['Encounter'].id}"
        identifiers = by_type["Encounter"].content
        assert f'"{ehr_identifier_system("sekmet")}"' in identifiers
        assert f"Encounter/{encounter_id}" in identifiers
        await recompute_all(db)
        status = await course_status(db, course_id)
        assert status["sessions_attended"] == 3
        assert status["phq9_latest"] == 9

        # A second sync sends nothing: pulled data is not pushed back, pushed data not pulled.
        await push_until_empty(sync, db)
        writes_before = len(proxy.writes())
        again = await pull_once(sync)
        await recompute_all(db)
        await push_until_empty(sync, db)
        assert again.stored == 0
        assert proxy.writes()[writes_before:] == []
        assert remote_by_sync_id(sekmet, "Encounter", f"Encounter/{encounter_id}") == []

        # Crash replay: the EHR has the resources but we lost what we remembered of them (the
        # pulled Observation is queued too: it must still not be pushed back).
        async with db.begin() as conn:
            await conn.execute(text("DELETE FROM ehr_remote WHERE direction = 'push'"))
            for ref in await local_refs(db, "Observation"):
                type_, id_ = ref.split("/")
                await enqueue_push(
                    conn,
                    kind=RESOURCE_KIND,
                    resource_type=type_,
                    resource_id=id_,
                    push_type=type_,
                    now=datetime.now(UTC),
                )
        await push_until_empty(sync, db)
        for ref in await local_refs(db, "Observation"):
            assert len(remote_by_sync_id(sekmet, "Observation", ref)) <= 1, ref
        with sekmet.client() as http:
            everything = http.get(
                "/Observation", params={"patient": ehr_patient_id, "_count": "100"}
            ).json()
        sync_ids = [
            i["value"]
            for e in everything.get("entry", [])
            for i in e["resource"].get("identifier", [])
            if i.get("system") == SYNC_SOURCE
        ]
        assert len(sync_ids) == len(set(sync_ids)) == 3  # no duplicate, nothing lost

        # The course completes: its summary goes to the EHR as a DocumentReference.
        completed = await ipt.post(f"/ipt/v1/courses/{course_id}/complete")
        assert completed.status_code == 200, completed.text
        await push_until_empty(sync, db)
    [document] = remote_by_sync_id_doc(sekmet, f"DocumentReference/ipt-summary-{course_id}")
    assert document["type"]["coding"][0]["code"] == "34904-3"
    assert document["subject"]["reference"] == f"Patient/{ehr_patient_id}"
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "text/markdown"
    markdown = base64.b64decode(attachment["data"]).decode()
    assert "## Sessions (3)" in markdown
    assert "## PHQ-9 trajectory" in markdown
    assert ": 9" in markdown  # the score pulled from the EHR is in the trajectory


def remote_by_sync_id_doc(server: Sekmet, value: str) -> list[dict[str, Any]]:
    with server.client() as http:
        bundle = http.get(
            "/DocumentReference", params={"identifier": f"{SYNC_SOURCE}|{value}"}
        ).json()
    return [entry["resource"] for entry in bundle.get("entry", [])]


async def test_pull_pages_advance_the_watermark_only_when_stored(
    ipt: httpx.AsyncClient, db: AsyncEngine, sekmet: Sekmet
) -> None:
    ehr_patient_id = ehr_patient(sekmet, "MRN-E2E-PAGES")
    with sekmet.client() as http:
        for n in range(5):
            score = phq9(ehr_patient_id, 10 + n, n + 1)
            assert http.post("/Observation", json=score).status_code == 201
    failing = {"on": True, "searches": 0}

    def second_page_fails(request: httpx.Request, index: int) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Observation"):
            failing["searches"] += 1
            if failing["on"] and failing["searches"] > 1:
                return httpx.Response(503)
        return None

    proxy = ProxyTransport(fault=second_page_fails)
    endpoint = ehr_endpoint(sekmet.base_url, pull=["Observation"])
    async with synced_endpoint(db, endpoint, proxy, fast_timing(page_size=2)) as sync:
        body = enrolment("Patient/x")
        body["patient"] = {"identifier": {"system": MRN_SYSTEM, "value": "MRN-E2E-PAGES"}}
        await enrol(ipt, body)
        first = await pull_once(sync)
        assert (first.stored, first.failed) == (2, 1)  # page 1 stored, page 2 unavailable
        async with db.connect() as conn:
            watermark = await conn.scalar(text("SELECT watermark FROM ehr_watermark"))
        page_one = sorted(o["meta"]["lastUpdated"] for o in ehr_scores(sekmet, ehr_patient_id))[:2]
        assert watermark == page_one[-1]

        failing["on"] = False
        second = await pull_once(sync)
        assert second.stored == 3
        pulled = await pulled_sources(db)
        assert len(pulled) == len(set(pulled)) == 5  # every score once, none twice


def ehr_scores(server: Sekmet, patient_id: str) -> list[dict[str, Any]]:
    with server.client() as http:
        bundle = http.get("/Observation", params={"patient": patient_id, "_count": "50"}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


async def pulled_sources(db: AsyncEngine) -> list[str]:
    rows = await query_rows(
        db,
        "SELECT content::jsonb -> 'meta' ->> 'source' AS source FROM resource "
        "WHERE resource_type = 'Observation' AND content::jsonb -> 'meta' ? 'source'",
    )
    return [str(row.source) for row in rows]
