"""Create, read, vread, update, delete and history over the FHIR REST API."""

from __future__ import annotations

from typing import Any

import httpx

FHIR = {"Content-Type": "application/fhir+json"}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Test", "given": ["Ada"]}], **extra}


async def create(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    response = await client.post(
        f"/fhir/{body['resourceType']}", json=body, headers={**FHIR, **headers}
    )
    assert response.status_code == 201, response.text
    return response


async def test_create_assigns_id_version_and_headers(client: httpx.AsyncClient) -> None:
    response = await create(client, patient(id="client-chosen"))
    body = response.json()
    assert body["id"] != "client-chosen"  # R4: the server ignores an id on create
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == (
        f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["content-type"].startswith("application/fhir+json")


async def test_read_serves_what_was_stored(client: httpx.AsyncClient) -> None:
    created = (await create(client, patient(gender="female"))).json()
    response = await client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["ETag"] == 'W/"1"'


async def test_update_increments_version_and_vread_keeps_old(client: httpx.AsyncClient) -> None:
    created = (await create(client, patient())).json()
    changed = {**created, "gender": "other"}
    response = await client.put(f"/fhir/Patient/{created['id']}", json=changed, headers=FHIR)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    old = await client.get(f"/fhir/Patient/{created['id']}/_history/1")
    assert old.status_code == 200
    assert "gender" not in old.json()
    assert (await client.get(f"/fhir/Patient/{created['id']}/_history/9")).status_code == 404


async def test_update_as_create_with_client_id(client: httpx.AsyncClient) -> None:
    response = await client.put("/fhir/Patient/mrn-42", json=patient(id="mrn-42"), headers=FHIR)
    assert response.status_code == 201
    assert response.json()["id"] == "mrn-42"
    assert response.headers["Location"].endswith("/fhir/Patient/mrn-42/_history/1")


async def test_delete_then_gone_and_history_kept(client: httpx.AsyncClient) -> None:
    created = (await create(client, patient())).json()
    url = f"/fhir/Patient/{created['id']}"
    deleted = await client.delete(url)
    assert deleted.status_code == 200
    assert deleted.json()["resourceType"] == "OperationOutcome"
    gone = await client.get(url)
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    history = (await client.get(f"{url}/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert (await client.get(f"{url}/_history/2")).status_code == 410
    # Deleting again succeeds (idempotent), and the resource can be re-created by PUT.
    assert (await client.delete(url)).status_code == 200
    recreated = await client.put(url, json={**patient(), "id": created["id"]}, headers=FHIR)
    assert recreated.status_code == 201
    assert recreated.json()["meta"]["versionId"] == "3"


async def test_if_match_stale_version_is_412(client: httpx.AsyncClient) -> None:
    created = (await create(client, patient())).json()
    url = f"/fhir/Patient/{created['id']}"
    ok = await client.put(url, json=created, headers={**FHIR, "If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = await client.put(url, json=created, headers={**FHIR, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(url)).json()["meta"]["versionId"] == "2"


async def test_if_none_match_current_version_is_304(client: httpx.AsyncClient) -> None:
    created = (await create(client, patient())).json()
    url = f"/fhir/Patient/{created['id']}"
    assert (await client.get(url, headers={"If-None-Match": 'W/"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": 'W/"0"'})).status_code == 200


async def test_prefer_return(client: httpx.AsyncClient) -> None:
    minimal = await client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR, "Prefer": "return=minimal"}
    )
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["Location"]
    outcome = await client.post(
        "/fhir/Patient", json=patient(), headers={**FHIR, "Prefer": "return=OperationOutcome"}
    )
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"


async def test_application_json_and_format_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient?_format=json", json=patient(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201
    assert (await client.get("/fhir/metadata?_format=application/fhir+json")).status_code == 200


async def test_type_and_system_history_are_paged(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        await create(client, patient())
    await create(client, {"resourceType": "Practitioner", "name": [{"family": "Weissman"}]})
    first = (await client.get("/fhir/Patient/_history?_count=2")).json()
    seen = [e["fullUrl"] for e in first["entry"]]
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert next_url.startswith("http://testserver/fhir/Patient/_history?")
    while next_url:
        page = (await client.get(next_url)).json()
        seen += [e["fullUrl"] for e in page["entry"]]
        next_url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == 5
    system = (await client.get("/fhir/_history")).json()
    assert len(system["entry"]) == 6


async def test_history_since_filters(client: httpx.AsyncClient) -> None:
    first = (await create(client, patient())).json()
    since = first["meta"]["lastUpdated"]
    await create(client, patient())
    recent = (await client.get("/fhir/Patient/_history", params={"_since": since})).json()
    assert len(recent["entry"]) == 2
    future = (await client.get("/fhir/Patient/_history", params={"_since": "2999-01-01"})).json()
    assert future.get("entry", []) == []


async def test_tampered_page_token_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/fhir/_history?_page=not-a-token")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_metadata_describes_the_server(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Patient", "CarePlan", "Encounter", "Observation"} <= types


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
