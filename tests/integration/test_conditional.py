"""Conditional create, update and delete semantics."""

from __future__ import annotations

import httpx

FHIR = {"Content-Type": "application/fhir+json"}
MRN = "urn:test:mrn"


def patient(value: str, **extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "identifier": [{"system": MRN, "value": value}], **extra}


async def test_conditional_create_returns_existing(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/fhir/Patient", json=patient("1"), headers={**FHIR, "If-None-Exist": f"identifier={MRN}|1"}
    )
    again = await client.post(
        "/fhir/Patient", json=patient("1"), headers={**FHIR, "If-None-Exist": f"identifier={MRN}|1"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


async def test_conditional_create_with_several_matches_is_412(client: httpx.AsyncClient) -> None:
    await client.post("/fhir/Patient", json=patient("dup"), headers=FHIR)
    await client.post("/fhir/Patient", json=patient("dup"), headers=FHIR)
    response = await client.post(
        "/fhir/Patient",
        json=patient("dup"),
        headers={**FHIR, "If-None-Exist": f"identifier={MRN}|dup"},
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"


async def test_conditional_update_creates_then_updates(client: httpx.AsyncClient) -> None:
    url = f"/fhir/Patient?identifier={MRN}|7"
    created = await client.put(url, json=patient("7"), headers=FHIR)
    assert created.status_code == 201
    updated = await client.put(url, json=patient("7", gender="male"), headers=FHIR)
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


async def test_conditional_update_by_code_only_and_system_only(client: httpx.AsyncClient) -> None:
    created = await client.put(f"/fhir/Patient?identifier={MRN}|8", json=patient("8"), headers=FHIR)
    by_code = await client.put(
        "/fhir/Patient?identifier=8", json=patient("8", gender="male"), headers=FHIR
    )
    assert by_code.json()["id"] == created.json()["id"]


async def test_conditional_update_with_conflicting_id_is_400(client: httpx.AsyncClient) -> None:
    await client.put(f"/fhir/Patient?identifier={MRN}|9", json=patient("9"), headers=FHIR)
    response = await client.put(
        f"/fhir/Patient?identifier={MRN}|9", json=patient("9", id="someone-else"), headers=FHIR
    )
    assert response.status_code == 400


async def test_conditional_update_without_criteria_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.put("/fhir/Patient", json=patient("1"), headers=FHIR)
    assert response.status_code == 400


async def test_conditional_delete(client: httpx.AsyncClient) -> None:
    created = (await client.post("/fhir/Patient", json=patient("del"), headers=FHIR)).json()
    response = await client.delete(f"/fhir/Patient?identifier={MRN}|del")
    assert response.status_code == 200
    assert (await client.get(f"/fhir/Patient/{created['id']}")).status_code == 410
    nothing = await client.delete(f"/fhir/Patient?identifier={MRN}|none")
    assert nothing.status_code == 200


async def test_unknown_criteria_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put("/fhir/Patient?shoe-size=12", json=patient("1"), headers=FHIR)
    assert response.status_code == 400
