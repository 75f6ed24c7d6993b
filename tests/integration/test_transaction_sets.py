"""Transactions write their creates and updates set-based, with one-by-one results and errors."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

FHIR = {"Content-Type": "application/fhir+json"}


def _put(resource: dict[str, Any], if_match: str | None = None) -> dict[str, Any]:
    request = {"method": "PUT", "url": f"Patient/{resource['id']}"}
    if if_match is not None:
        request["ifMatch"] = if_match
    return {"resource": resource, "request": request}


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": "Patient"}}


async def _transaction(client: httpx.AsyncClient, *entries: dict[str, Any]) -> httpx.Response:
    body = {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}
    return await client.post("/fhir", content=orjson.dumps(body), headers=FHIR)


async def _history_size(client: httpx.AsyncClient) -> int:
    return len((await client.get("/fhir/_history?_count=1000")).json().get("entry", []))


async def test_creates_and_updates_in_one_run_answer_as_one_by_one(
    client: httpx.AsyncClient,
) -> None:
    existing = (
        await client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR)
    ).json()
    response = await _transaction(
        client,
        _post({"resourceType": "Patient", "gender": "female"}),
        _put({"resourceType": "Patient", "id": existing["id"], "gender": "male"}, 'W/"1"'),
        _put({"resourceType": "Patient", "id": "client-chosen", "gender": "other"}),
    )
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "200 OK", "201 Created"]
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    assert locations[1:] == [
        f"Patient/{existing['id']}/_history/2",
        "Patient/client-chosen/_history/1",
    ]
    updated = (await client.get(f"/fhir/Patient/{existing['id']}")).json()
    assert updated["gender"] == "male"
    found = (await client.get("/fhir/Patient?gender=other")).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["client-chosen"]


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        ({"resourceType": "Patient", "gender": "bogus"}, 400, "code-invalid"),
        ({"resourceType": "Patient", "id": "stale"}, 412, "conflict"),
    ],
)
async def test_the_failing_entry_of_a_run_is_named_and_nothing_is_written(
    client: httpx.AsyncClient, bad: dict[str, Any], status: int, code: str
) -> None:
    await client.put(
        "/fhir/Patient/stale", json={"resourceType": "Patient", "id": "stale"}, headers=FHIR
    )
    before = await _history_size(client)
    failing = _put(bad, 'W/"7"') if "id" in bad else _post(bad)
    response = await _transaction(
        client,
        _post({"resourceType": "Patient", "gender": "female"}),
        _put({"resourceType": "Patient", "id": "fresh", "gender": "male"}),
        failing,
        _post({"resourceType": "Patient", "gender": "male"}),
    )
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == code
    assert issue["expression"][0] == "Bundle.entry[2]"
    assert await _history_size(client) == before
    assert (await client.get("/fhir/Patient/fresh")).status_code == 404


async def test_a_resource_named_twice_is_written_twice_in_order(client: httpx.AsyncClient) -> None:
    response = await _transaction(
        client,
        _put({"resourceType": "Patient", "id": "twice", "gender": "male"}),
        _put({"resourceType": "Patient", "id": "twice", "gender": "female"}),
    )
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "200 OK"]
    current = (await client.get("/fhir/Patient/twice")).json()
    assert (current["gender"], current["meta"]["versionId"]) == ("female", "2")
