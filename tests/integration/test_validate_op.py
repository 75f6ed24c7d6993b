"""`$validate`: an OperationOutcome for any resource type, and nothing stored."""

from __future__ import annotations

import httpx

FHIR = {"Content-Type": "application/fhir+json"}


async def stored_versions(client: httpx.AsyncClient) -> int:
    return len((await client.get("/fhir/_history")).json().get("entry", []))


async def test_valid_resource(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient/$validate", json={"resourceType": "Patient"}, headers=FHIR
    )
    assert response.status_code == 200
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("information", "informational")
    assert await stored_versions(client) == 0


async def test_invalid_resource_lists_its_problems(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Encounter", "status": "bogus", "shoe": 1}
    response = await client.post("/fhir/Encounter/$validate", json=body, headers=FHIR)
    assert response.status_code == 200
    issues = response.json()["issue"]
    assert {i["severity"] for i in issues} == {"error"}
    paths = {p for i in issues for p in i.get("expression", [])}
    assert {"Encounter.status", "Encounter.shoe", "Encounter.class"} <= paths
    assert await stored_versions(client) == 0


async def test_parameters_wrapper(client: httpx.AsyncClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Observation", "status": "final"}},
            {"name": "mode", "valueCode": "create"},
        ],
    }
    response = await client.post("/fhir/Observation/$validate", json=body, headers=FHIR)
    assert response.status_code == 200
    assert any("Observation.code" in i.get("expression", []) for i in response.json()["issue"])


async def test_requests_it_cannot_understand(client: httpx.AsyncClient) -> None:
    wrong_type = await client.post(
        "/fhir/Patient/$validate", json={"resourceType": "Goal"}, headers=FHIR
    )
    assert wrong_type.status_code == 400
    empty = await client.post(
        "/fhir/Patient/$validate",
        json={"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "create"}]},
        headers=FHIR,
    )
    assert empty.status_code == 400
