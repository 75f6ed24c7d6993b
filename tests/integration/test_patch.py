"""PATCH with JSON Patch: applied under the row lock, If-Match honoured, result validated."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

FHIR = {"Content-Type": "application/fhir+json"}
PATCH = {"Content-Type": "application/json-patch+json"}


async def created_patient(client: httpx.AsyncClient) -> dict[str, Any]:
    body = {"resourceType": "Patient", "name": [{"family": "Weissman"}]}
    response = await client.post("/fhir/Patient", json=body, headers=FHIR)
    result: dict[str, Any] = response.json()
    return result


async def patch(client: httpx.AsyncClient, url: str, ops: Any, **headers: str) -> httpx.Response:
    return await client.patch(url, content=orjson.dumps(ops), headers={**PATCH, **headers})


async def test_patch_applies_and_versions(client: httpx.AsyncClient) -> None:
    created = await created_patient(client)
    url = f"/fhir/Patient/{created['id']}"
    response = await patch(
        client,
        url,
        [
            {"op": "add", "path": "/gender", "value": "female"},
            {"op": "replace", "path": "/name/0/family", "value": "Klerman"},
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["gender"], body["name"][0]["family"]) == ("female", "Klerman")
    assert body["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    assert (await client.get(url)).json() == body


async def test_patch_if_match(client: httpx.AsyncClient) -> None:
    created = await created_patient(client)
    url = f"/fhir/Patient/{created['id']}"
    ops = [{"op": "add", "path": "/gender", "value": "male"}]
    assert (await patch(client, url, ops, **{"If-Match": 'W/"1"'})).status_code == 200
    stale = await patch(client, url, ops, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412


async def test_invalid_patches(client: httpx.AsyncClient) -> None:
    created = await created_patient(client)
    url = f"/fhir/Patient/{created['id']}"
    invalid_result = await patch(client, url, [{"op": "add", "path": "/gender", "value": "x"}])
    assert invalid_result.status_code == 400
    assert invalid_result.json()["issue"][0]["code"] == "code-invalid"
    unknown_element = await patch(client, url, [{"op": "add", "path": "/shoe", "value": 1}])
    assert unknown_element.status_code == 400
    failed_test = await patch(client, url, [{"op": "test", "path": "/gender", "value": "male"}])
    assert failed_test.status_code == 422
    not_a_patch = await patch(client, url, {"op": "add"})
    assert not_a_patch.status_code == 400
    bad_op = await patch(client, url, [{"op": "frobnicate", "path": "/x"}])
    assert bad_op.status_code == 400
    new_id = await patch(client, url, [{"op": "replace", "path": "/id", "value": "other"}])
    assert new_id.status_code == 400
    wrong_type = await client.patch(url, json=[], headers=FHIR)
    assert wrong_type.status_code == 415
    missing = await patch(client, "/fhir/Patient/nope", [])
    assert missing.status_code == 404
    assert (await client.get(url)).json()["meta"]["versionId"] == "1"


async def test_concurrent_patches_lose_nothing(client: httpx.AsyncClient) -> None:
    created = await created_patient(client)
    url = f"/fhir/Patient/{created['id']}"
    responses = await asyncio.gather(
        *(
            patch(client, url, [{"op": "add", "path": "/name/-", "value": {"family": f"N{n}"}}])
            for n in range(10)
        )
    )
    assert {r.status_code for r in responses} == {200}
    names = {n["family"] for n in (await client.get(url)).json()["name"]}
    assert names == {"Weissman", *(f"N{n}" for n in range(10))}


async def test_conditional_patch(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": "7"}]}
    created = (await client.post("/fhir/Patient", json=body, headers=FHIR)).json()
    response = await patch(
        client,
        "/fhir/Patient?identifier=urn:test|7",
        [{"op": "add", "path": "/active", "value": True}],
    )
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    none = await patch(client, "/fhir/Patient?identifier=urn:test|8", [])
    assert none.status_code == 404
