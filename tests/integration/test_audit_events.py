"""AuditEvent: every read, search, write, delete and refusal is recorded; the trail is
readable with an audit scope only and cannot be changed through the API.

Writes are recorded in the write's own transaction (visible as soon as the response is), a
failed write leaves its failure record and no data, reads reach the table through the batched
buffer, and searches are recorded with parameter names only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ipt_api.audit import AuditBuffer
from ipt_core.audit import (
    AuditFilter,
    AuditRecord,
    audit_event_json,
    insert_records,
    read_record,
    search_records,
)
from tests.integration.authz_records import create, patient_record, resource_of
from tests.integration.authz_support import ADMIN, FHIR, Mint, Secured, bearer
from tests.support.waiting import poll_until

AUDITOR = "system/AuditEvent.rs"


async def _audit(secured: Secured, mint: Mint, query: str) -> list[dict[str, Any]]:
    response = await secured.http.get(f"/fhir/AuditEvent?{query}", headers=bearer(mint(AUDITOR)))
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


async def _rows(db: AsyncEngine, where: str = "TRUE", **params: Any) -> list[Any]:
    async with db.connect() as conn:
        return list(await conn.execute(text(f"SELECT * FROM audit_event WHERE {where}"), params))


def _subtype(event: dict[str, Any]) -> str:
    code: str = event["subtype"][0]["code"]
    return code


async def test_a_read_is_recorded_with_who_what_when_outcome_and_where(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    reader = mint("system/Observation.rs", sub="dr-who", client_id="ehr-app")
    response = await secured.http.get(
        f"/fhir/Observation/{ids['Observation']}", headers=bearer(reader)
    )
    assert response.status_code == 200
    await secured.flush_audit()
    events = await _audit(secured, mint, f"entity=Observation/{ids['Observation']}&subtype=read")
    assert len(events) == 1
    event = events[0]
    assert event["type"]["code"] == "rest"
    assert (event["action"], event["outcome"]) == ("R", "0")
    user, client = event["agent"]
    assert user["who"]["identifier"]["value"] == "dr-who"
    assert user["requestor"] is True
    assert user["network"]["address"] == "127.0.0.1"
    assert client["who"]["identifier"]["value"] == "ehr-app"
    assert event["source"]["observer"]["display"] == "IPT Care Service"
    whats = [e["what"]["reference"] for e in event["entity"]]
    assert whats == [f"Observation/{ids['Observation']}", f"Patient/{ids['Patient']}"]
    recorded = datetime.fromisoformat(event["recorded"].replace("Z", "+00:00"))
    assert abs(recorded - datetime.now(UTC)) < timedelta(minutes=1)
    # Searchable by agent, patient, date and outcome too.
    assert await _audit(secured, mint, f"agent=ehr-app&patient={ids['Patient']}&action=R")
    today = datetime.now(UTC).date().isoformat()
    assert await _audit(secured, mint, f"date=ge{today}&outcome=0&agent=dr-who")
    assert await _audit(secured, mint, "date=lt2000-01-01") == []


async def test_searches_are_recorded_with_parameter_names_never_values(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    await patient_record(secured, mint(ADMIN))
    url = "/fhir/Patient?family=Zwirbelkopf&identifier=urn:mrn|MRN-884422"
    response = await secured.http.get(url, headers=bearer(mint("system/Patient.rs")))
    assert response.status_code == 200
    await secured.flush_audit()
    events = await _audit(secured, mint, "subtype=search-type&entity=Patient")
    assert len(events) == 1
    (entity,) = events[0]["entity"]
    assert entity["name"] == "Patient"
    assert entity["detail"] == [{"type": "parameter-names", "valueString": "family,identifier"}]
    everything = str([tuple(row) for row in await _rows(db)])  # every fact stored
    assert "Zwirbelkopf" not in everything
    assert "MRN-884422" not in everything


async def test_a_read_names_the_patient_whose_record_it_reached(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    reader = mint("system/*.rs", sub="dr-names")
    for path in (f"Patient/{ids['Patient']}", f"Observation/{ids['Observation']}"):
        response = await secured.http.get(f"/fhir/{path}", headers=bearer(reader))
        assert response.status_code == 200
    await secured.flush_audit()
    rows = await _rows(db, "agent = 'dr-names'")
    named = sorted((row.entity_type, row.patient_id) for row in rows)
    assert named == [("Observation", ids["Patient"]), ("Patient", ids["Patient"])]


async def test_writes_are_recorded_in_their_own_transaction(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    writer = mint("system/Patient.cud", sub="registrar")
    patient = await create(secured, writer, "Patient")
    # No flush: the record committed with the write.
    (created,) = await _rows(db, "entity_id = :id", id=patient)
    assert (created.action, created.subtype, created.outcome) == ("C", "create", 0)
    assert created.agent == "registrar"
    assert (created.entity_type, created.entity_id, created.version_id) == ("Patient", patient, 1)
    deleted = await secured.http.delete(f"/fhir/Patient/{patient}", headers=bearer(writer))
    assert deleted.status_code == 200
    actions = sorted(row.action for row in await _rows(db, "entity_id = :id", id=patient))
    assert actions == ["C", "D"]


async def test_a_failed_write_leaves_its_audit_record_and_no_data(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    before = await _rows(db)
    token = mint("system/*.*", sub="batch-loader")
    # The first entry is written, then the second fails (no CarePlan matches): rolled back.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource_of("Goal", ids["Patient"]),
                "request": {"method": "POST", "url": "Goal"},
            },
            {
                "resource": resource_of("Observation", ids["Patient"])
                | {"basedOn": [{"reference": "CarePlan?_id=missing"}]},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = await secured.http.post("/fhir", json=bundle, headers=bearer(token, **FHIR))
    assert response.status_code == 412
    goals = await secured.http.get("/fhir/Goal", headers=bearer(mint(ADMIN)))
    assert goals.json()["total"] == 1  # only the seeded one: nothing of the Bundle stayed
    failures = await _rows(db, "agent = 'batch-loader'")
    assert {(row.subtype, row.entity_type) for row in failures} >= {
        ("create", "Goal"),
        ("create", "Observation"),
    }
    assert {row.outcome for row in failures} == {4}
    assert {row.outcome_status for row in failures} == {412}
    assert len(await _rows(db)) == len(before) + len(failures)


async def test_a_write_refused_inside_its_transaction_is_recorded_and_undone(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    ours, theirs = (
        await patient_record(secured, mint(ADMIN)),
        await patient_record(secured, mint(ADMIN)),
    )
    token = mint("patient/*.cruds", patient=ours["Patient"], sub="patient-app")
    body = resource_of("Observation", theirs["Patient"])
    response = await secured.http.post(
        "/fhir/Observation", json=body, headers=bearer(token, **FHIR)
    )
    assert response.status_code == 403
    (failure,) = await _rows(db, "agent = 'patient-app'")
    assert (failure.subtype, failure.outcome, failure.patient_id) == ("create", 4, ours["Patient"])
    observations = await secured.http.get("/fhir/Observation", headers=bearer(mint(ADMIN)))
    assert observations.json()["total"] == 2  # the two seeded ones


async def test_refusals_are_recorded(secured: Secured, mint: Mint, db: AsyncEngine) -> None:
    no_token = await secured.http.get("/fhir/Observation/x")
    assert no_token.status_code == 401
    wrong_scope = await secured.http.get(
        "/fhir/Observation/x", headers=bearer(mint("system/Patient.rs", sub="nosy"))
    )
    assert wrong_scope.status_code == 403
    await secured.flush_audit()
    rows = await _rows(db)
    refused = {(row.agent, row.entity_type, row.outcome) for row in rows}
    assert ("anonymous", "Observation", 4) in refused
    assert ("nosy", "Observation", 4) in refused


async def test_reads_are_flushed_by_the_buffer_on_its_own(
    secured: Secured, mint: Mint, db: AsyncEngine
) -> None:
    token = mint("system/Patient.rs", sub="periodic")
    assert (await secured.http.get("/fhir/Patient", headers=bearer(token))).status_code == 200

    async def recorded() -> bool:
        return bool(await _rows(db, "agent = 'periodic'"))

    await poll_until(recorded, within_s=5, what="the read's audit record")


async def test_the_trail_needs_an_audit_scope(secured: Secured, mint: Mint) -> None:
    for scope, expected in (
        (AUDITOR, 200),
        ("user/AuditEvent.read", 200),
        ("system/*.*", 403),
        ("system/*.rs", 403),
        ("patient/AuditEvent.rs", 403),
        ("system/Patient.rs", 403),
    ):
        response = await secured.http.get(
            "/fhir/AuditEvent", headers=bearer(mint(scope, patient="p"))
        )
        assert response.status_code == expected, scope


async def test_nobody_can_change_the_trail(secured: Secured, mint: Mint, db: AsyncEngine) -> None:
    await create(secured, mint(ADMIN), "Patient")
    (row,) = await _rows(db)
    everything = mint(f"{ADMIN} system/AuditEvent.cruds")
    event = (
        await secured.http.get(f"/fhir/AuditEvent/{row.id}", headers=bearer(everything))
    ).json()
    assert event["id"] == row.id
    headers = bearer(everything, **FHIR)
    attempts = [
        ("POST", "/fhir/AuditEvent", event),
        ("PUT", f"/fhir/AuditEvent/{row.id}", event),
        ("PATCH", f"/fhir/AuditEvent/{row.id}", []),
        ("DELETE", f"/fhir/AuditEvent/{row.id}", None),
        ("DELETE", "/fhir/AuditEvent?agent=x", None),
    ]
    for method, url, body in attempts:
        response = await secured.http.request(method, url, json=body, headers=headers)
        assert response.status_code == 405, (method, url)
    for method in ("POST", "PUT", "DELETE"):
        entry: dict[str, Any] = {"request": {"method": method, "url": f"AuditEvent/{row.id}"}}
        if method != "DELETE":
            entry["resource"] = event
        for kind in ("transaction", "batch"):
            bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
            response = await secured.http.post("/fhir", json=bundle, headers=headers)
            status = (
                response.status_code
                if kind == "transaction"
                else int(response.json()["entry"][0]["response"]["status"][:3])
            )
            assert status == 405, (method, kind)
    # Not even SQL can rewrite a record (only the retention purge deletes).
    with pytest.raises(DBAPIError):
        async with db.begin() as conn:
            await conn.execute(text("UPDATE audit_event SET agent = 'someone-else'"))
    assert [r.agent for r in await _rows(db, "id = :id", id=row.id)] != ["someone-else"]


async def test_retention_purges_old_records_only(db: AsyncEngine) -> None:
    now = datetime.now(UTC)

    def record(id_: str, age_days: int) -> AuditRecord:
        return AuditRecord(id_, now - timedelta(days=age_days), "read", 0, "someone")

    async with db.begin() as conn:
        await insert_records(conn, [record("old", 40), record("recent", 2)])
    buffer = AuditBuffer(db, retention_days=30)
    assert await buffer.purge() == 1
    assert [row.id for row in await _rows(db)] == ["recent"]
    assert await AuditBuffer(db, retention_days=None).purge() == 0


async def test_the_capability_statement_lists_the_trail_as_read_only(secured: Secured) -> None:
    statement = (await secured.http.get("/fhir/metadata")).json()
    (audit,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert {i["code"] for i in audit["interaction"]} == {"read", "search-type"}
    assert {"date", "agent", "entity", "patient"} <= {p["name"] for p in audit["searchParam"]}


async def test_queued_reads_are_written_at_shutdown(db: AsyncEngine) -> None:
    buffer = AuditBuffer(db, interval_s=3600.0)  # only the shutdown can write them
    buffer.start()
    buffer.add([AuditRecord("queued", datetime.now(UTC), "read", 0, "someone")])
    assert await _rows(db) == []
    await buffer.stop()
    assert [row.id for row in await _rows(db)] == ["queued"]


async def test_an_unreachable_database_keeps_the_records_and_logs_no_content(
    db: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = create_async_engine("postgresql+asyncpg://ipt@127.0.0.1:1/none")
    buffer = AuditBuffer(unreachable)
    record = AuditRecord(
        "kept", datetime.now(UTC), "read", 0, "dr-zwirbelkopf", entity_type="Patient"
    )
    buffer.add([record])
    assert await buffer.flush() == 0
    assert "dr-zwirbelkopf" not in caplog.text
    assert "audit flush of 1 records failed" in caplog.text
    await unreachable.dispose()
    buffer.engine = db  # the database is back: the kept record is written
    assert await buffer.flush() == 1
    assert [row.agent for row in await _rows(db)] == ["dr-zwirbelkopf"]


async def test_the_trail_pages_newest_first(secured: Secured, mint: Mint) -> None:
    writer = mint("system/Patient.c", sub="pager")
    made = [await create(secured, writer, "Patient") for _ in range(3)]
    headers = bearer(mint(AUDITOR))
    first = (
        await secured.http.get("/fhir/AuditEvent?agent=pager&_count=2", headers=headers)
    ).json()
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = (await secured.http.get(next_url.replace("http://t", ""), headers=headers)).json()
    pages = [first, second]
    seen = [
        e["resource"]["entity"][0]["what"]["reference"].split("/")[1]
        for page in pages
        for e in page["entry"]
    ]
    assert seen == list(reversed(made))
    assert not [link for link in second["link"] if link["relation"] == "next"]
    tampered = next_url.replace("agent=pager", "agent=other").replace("http://t", "")
    assert (await secured.http.get(tampered, headers=headers)).status_code == 400


async def test_a_batch_written_before_is_written_once_when_retried(db: AsyncEngine) -> None:
    # The first flush was stored but its answer lost (the connection dropped at the end), so
    # the buffer kept the batch; the retry must not fail on it, nor hold up what follows.
    stored = AuditRecord("stored", datetime.now(UTC), "read", 0, "someone")
    buffer = AuditBuffer(db)
    buffer.add([stored])
    assert await buffer.flush() == 1
    buffer.add([stored, AuditRecord("new", datetime.now(UTC), "read", 0, "someone")])
    assert await buffer.flush() == 2
    assert sorted(row.id for row in await _rows(db)) == ["new", "stored"]
    buffer.add([AuditRecord("later", datetime.now(UTC), "read", 0, "someone")])
    assert await buffer.flush() == 1
    assert sorted(row.id for row in await _rows(db)) == ["later", "new", "stored"]


async def test_a_record_is_served_as_it_was_recorded(db: AsyncEngine) -> None:
    # Stored as facts, rendered when read: the AuditEvent served is the one the record makes.
    recorded = datetime(2026, 12, 4, 9, 30, 0, 123456, tzinfo=UTC)
    records = [
        AuditRecord(
            "vread", recorded, "vread", 0, "dr-who", client_id="ehr-app",
            source_address="10.0.0.7", entity_type="Observation", entity_id="o-1",
            version_id=3, patient_id="p-1",
        ),
        AuditRecord(
            "search", recorded, "search", 4, "dr-who", entity_type="Patient",
            query_names=("family", "identifier"), patient_scope="p-2", outcome_status=403,
        ),
        AuditRecord("refused", recorded, "history", 4, "anonymous", outcome_status=401),
    ]  # fmt: skip
    async with db.begin() as conn:
        await insert_records(conn, records)
    rows = await _rows(db)
    assert [row.content for row in rows] == [None, None, None]  # facts only
    async with db.connect() as conn:
        for record in records:
            assert await read_record(conn, record.id) == orjson.loads(
                orjson.dumps(audit_event_json(record))
            )
        found = await search_records(conn, AuditFilter(agents=("dr-who",)), limit=10)
    assert [event["id"] for _, event in found] == ["search", "vread"]  # newest first


async def test_a_record_stored_before_the_facts_columns_is_served_as_stored(
    db: AsyncEngine,
) -> None:
    # Rows written before migration 0006 hold the AuditEvent rendered then, and no facts.
    event = {"resourceType": "AuditEvent", "id": "older", "action": "R", "outcome": "0"}
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_event (id, recorded, subtype, action, outcome, agent, "
                "content) VALUES ('older', now(), 'read', 'R', 0, 'someone', :content)"
            ),
            {"content": orjson.dumps(event).decode()},
        )
    async with db.connect() as conn:
        assert await read_record(conn, "older") == event
        (found,) = await search_records(conn, AuditFilter(agents=("someone",)), limit=10)
    assert found[1] == event
