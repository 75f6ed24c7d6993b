"""Batch and transaction Bundles: atomicity, urn:uuid rewriting, order, conditional entries."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings

FHIR = {"Content-Type": "application/fhir+json"}
MRN = "urn:test:mrn"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def patient(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": value}]}


def encounter(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": "AMB"},
        "subject": {"reference": subject},
    }


async def versions(client: httpx.AsyncClient) -> int:
    return len((await client.get("/fhir/_history?_count=1000")).json().get("entry", []))


async def submit(
    client: httpx.AsyncClient, body: dict[str, Any], path: str = "/fhir"
) -> httpx.Response:
    return await client.post(path, content=orjson.dumps(body), headers=FHIR)


async def test_transaction_rewrites_urn_uuids(client: httpx.AsyncClient) -> None:
    urn = "urn:uuid:2f9bb1c4-7b7c-4a4e-9d1a-0c3f0d1e2a11"
    response = await submit(
        client,
        bundle(
            "transaction",
            post(encounter(urn)),  # refers to an entry that comes later
            post(patient("T1"), urn),
        ),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    enc_entry, pat_entry = answer["entry"]
    assert enc_entry["response"]["status"] == "201 Created"
    patient_id = pat_entry["resource"]["id"]
    assert pat_entry["response"]["location"] == f"Patient/{patient_id}/_history/1"
    assert pat_entry["response"]["etag"] == 'W/"1"'
    stored = (await client.get(f"/fhir/{enc_entry['response']['location']}")).json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"


async def test_transaction_is_atomic(client: httpx.AsyncClient) -> None:
    response = await submit(
        client,
        bundle(
            "transaction",
            post(patient("ok")),
            post({"resourceType": "Patient", "gender": "bogus"}),
        ),
    )
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["expression"]
    assert await versions(client) == 0


async def test_transaction_processes_deletes_first_and_reads_last(
    client: httpx.AsyncClient,
) -> None:
    old = (await client.post("/fhir/Patient", json=patient("old"), headers=FHIR)).json()
    response = await submit(
        client,
        bundle(
            "transaction",
            {"request": {"method": "GET", "url": f"Patient?identifier={MRN}|"}},
            post(patient("new")),
            {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
        ),
    )
    assert response.status_code == 200, response.text
    search, created, deleted = response.json()["entry"]
    assert deleted["response"]["status"] == "204 No Content"
    assert created["response"]["status"] == "201 Created"
    found = [e["resource"]["identifier"][0]["value"] for e in search["resource"]["entry"]]
    assert found == ["new"]  # the GET saw the POST and the DELETE


async def test_conditional_entries(client: httpx.AsyncClient) -> None:
    existing = (await client.post("/fhir/Patient", json=patient("C1"), headers=FHIR)).json()
    urn = "urn:uuid:aa6a3c5e-2f1b-4b55-8f0e-6d7f1f2d9b01"
    response = await submit(
        client,
        bundle(
            "transaction",
            post(patient("C1"), urn, ifNoneExist=f"identifier={MRN}|C1"),
            post(encounter(urn)),
            post(encounter(f"Patient?identifier={MRN}|C1")),
            {
                "resource": {**patient("C2"), "gender": "female"},
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|C2"},
            },
            {
                "resource": {**existing, "gender": "male"},
                "request": {
                    "method": "PUT",
                    "url": f"Patient/{existing['id']}",
                    "ifMatch": 'W/"1"',
                },
            },
        ),
    )
    assert response.status_code == 200, response.text
    found, enc1, enc2, upserted, updated = response.json()["entry"]
    assert found["response"]["status"] == "200 OK"
    assert found["resource"]["id"] == existing["id"]
    for entry in (enc1, enc2):
        assert entry["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"
    assert upserted["response"]["status"] == "201 Created"
    assert updated["resource"]["meta"]["versionId"] == "2"
    stale = await submit(
        client,
        bundle(
            "transaction",
            {
                "resource": existing,
                "request": {
                    "method": "PUT",
                    "url": f"Patient/{existing['id']}",
                    "ifMatch": 'W/"1"',
                },
            },
        ),
    )
    assert stale.status_code == 412


async def test_unresolvable_urn_fails_the_transaction(client: httpx.AsyncClient) -> None:
    response = await submit(client, bundle("transaction", post(encounter("urn:uuid:missing"))))
    assert response.status_code == 400
    assert await versions(client) == 0


async def test_batch_entries_are_independent(client: httpx.AsyncClient) -> None:
    response = await submit(
        client,
        bundle(
            "batch",
            post(patient("B1")),
            post({"resourceType": "Patient", "gender": "bogus"}),
            {"request": {"method": "GET", "url": "Patient/nope"}},
            {"request": {"method": "DELETE", "url": "Patient?shoe-size=1"}},
            {"request": {"method": "GET", "url": "Patient?identifier=" + MRN + "|B1"}},
        ),
        path="/fhir/",
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert response.json()["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in entries]
    assert statuses == [
        "201 Created",
        "400 Bad Request",
        "404 Not Found",
        "400 Bad Request",
        "200 OK",
    ]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[4]["resource"]["total"] == 1  # a batch runs in Bundle order
    assert await versions(client) == 1


async def test_patch_entry(client: httpx.AsyncClient) -> None:
    created = (await client.post("/fhir/Patient", json=patient("P"), headers=FHIR)).json()
    operations = [{"op": "add", "path": "/gender", "value": "female"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(operations)).decode(),
    }
    response = await submit(
        client,
        bundle(
            "transaction",
            {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}},
        ),
        path="/fhir/?",
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["gender"] == "female"


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Patient"},
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"resource": {"resourceType": "Patient"}}],
        },
    ],
)
async def test_malformed_bundles(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await submit(client, body)
    if body.get("type") == "batch":
        assert response.json()["entry"][0]["response"]["status"] == "400 Bad Request"
    else:
        assert response.status_code == 400


async def test_entry_limit(db: AsyncEngine) -> None:
    app = create_app(api_settings(max_bundle_entries=2), database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            body = bundle("batch", *(post(patient(str(n))) for n in range(3)))
            response = await submit(http, body)
    assert response.status_code == 413
    assert "at most 2" in response.json()["issue"][0]["diagnostics"]
