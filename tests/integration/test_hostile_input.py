"""Hostile input: a clear 400 OperationOutcome (or stored correctly), never a 500.

NUL and other control characters, huge strings, long index keys, odd ids and duplicate JSON
keys, through the FHIR API and the IPT domain API (README, "Input limits").
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.integration.ipt_helpers import enrol, enrolment, patient, refused, stored_versions

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"resourceType": "Patient", "name": [{"family": "A\u0000B"}]}',
        rb'{"resourceType": "Patient", "name": [{"family": "A\u001fB"}]}',
        rb'{"resourceType": "Patient", "name": [{"family": "A\bB"}]}',
        rb'{"resourceType": "Patient", "name": [{"fam\u0000ily": "A"}]}',
    ],
)
async def test_control_characters_in_fhir_strings(client: httpx.AsyncClient, raw: bytes) -> None:
    outcome = await refused(client, await client.post("/fhir/Patient", content=raw, headers=FHIR))
    assert "control character" in outcome["issue"][0]["diagnostics"]


async def test_tabs_and_newlines_stay_legal(client: httpx.AsyncClient) -> None:
    raw = rb'{"resourceType": "Patient", "name": [{"text": "A\tB\r\nC \\u0000 D"}]}'
    response = await client.post("/fhir/Patient", content=raw, headers=FHIR)
    assert response.status_code == 201, response.text
    assert response.json()["name"][0]["text"] == "A\tB\r\nC \\u0000 D"


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient/a%00b",
        "/fhir/Patient?name=a%00b",
        "/fhir/Patient?family%00=x",
        "/fhir/Patient?_id=a%01",
        "/fhir/Patient/a%00b/_history",
        "/ipt/v1/courses/a%00b",
    ],
)
async def test_control_characters_in_urls(client: httpx.AsyncClient, url: str) -> None:
    outcome = await refused(client, await client.get(url))
    assert "control character" in outcome["issue"][0]["diagnostics"]


async def test_nul_in_criteria_headers_and_forms(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "active": True}
    create = await client.post(
        "/fhir/Patient", json=body, headers={**FHIR, "If-None-Exist": "identifier=a%00b"}
    )
    await refused(client, create)
    search = await client.post(
        "/fhir/Patient/_search",
        content=b"name=a%00b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await refused(client, search)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient?name=a%00b"}}],
    }
    answer = await client.post("/fhir", json=batch, headers=FHIR)
    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["response"]["status"].startswith("400")


async def test_a_long_legal_string_is_stored_and_searchable(client: httpx.AsyncClient) -> None:
    # 8 KB is far over PostgreSQL's btree row limit (~2.7 KB): the index keeps a prefix.
    family = "Ö" * 3000 + "x" * 5000
    body = {"resourceType": "Patient", "name": [{"family": family}]}
    body["identifier"] = [{"system": "urn:s:" + "s" * 4000, "value": "v" * 8000}]
    created = await client.post("/fhir/Patient", json=body, headers=FHIR)
    assert created.status_code == 201, created.text
    found = (await client.get("/fhir/Patient", params={"name": "o" * 200})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created.json()["id"]]
    exact = await client.get("/fhir/Patient", params={"family:exact": family})
    assert len(exact.json()["entry"]) == 1
    token = f"urn:s:{'s' * 4000}|{'v' * 8000}"
    by_identifier = await client.post(
        "/fhir/Patient/_search",
        content=_form(token),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert len(by_identifier.json()["entry"]) == 1, by_identifier.text
    other = await client.post(
        "/fhir/Patient/_search",
        content=_form(token[:-1] + "w"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "entry" not in other.json()


def _form(token: str) -> bytes:
    return str(httpx.QueryParams({"identifier": token})).encode()


async def test_a_string_over_the_fhir_limit(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "x" * (1024 * 1024 + 1)}]}
    response = await client.post("/fhir/Patient", content=orjson.dumps(body), headers=FHIR)
    outcome = await refused(client, response)
    assert outcome["issue"][0]["expression"] == ["Patient.name[0].family"]


@pytest.mark.parametrize(
    ("in_url", "id_"), [("%2E", "."), ("%2E%2E", ".."), ("a" * 65, "a" * 65), ("a_b", "a_b")]
)
async def test_ids_outside_the_fhir_id_syntax(
    client: httpx.AsyncClient, in_url: str, id_: str
) -> None:
    body = {"resourceType": "Patient", "id": id_}
    response = await client.put(f"/fhir/Patient/{in_url}", json=body, headers=FHIR)
    await refused(client, response)
    conditional = await client.put("/fhir/Patient?identifier=u|1", json=body, headers=FHIR)
    await refused(client, conditional)
    entry = {"resource": body, "request": {"method": "PUT", "url": f"Patient/{in_url}"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    await refused(client, await client.post("/fhir", json=bundle, headers=FHIR))
    assert (await client.get(f"/fhir/Patient/{in_url}")).status_code == 404


async def test_a_64_character_id_is_fine(client: httpx.AsyncClient) -> None:
    id_ = "a-." + "b" * 61
    response = await client.put(
        f"/fhir/Patient/{id_}", json={"resourceType": "Patient", "id": id_}, headers=FHIR
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"resourceType": "Patient", "gender": "male", "gender": "female"}',
        b'{"resourceType": "Patient", "name": [{"family": "A", "family" : "B"}]}',
        b'{"resourceType": "Patient", "resourceType": "Patient"}',
    ],
)
async def test_duplicate_json_keys(client: httpx.AsyncClient, raw: bytes) -> None:
    outcome = await refused(client, await client.post("/fhir/Patient", content=raw, headers=FHIR))
    assert "duplicate" in outcome["issue"][0]["diagnostics"].lower()


async def test_a_quoted_colon_in_a_string_is_no_duplicate(client: httpx.AsyncClient) -> None:
    raw = b'{"resourceType": "Patient", "name": [{"text": "say \\": hi", "family": "A"}]}'
    response = await client.post("/fhir/Patient", content=raw, headers=FHIR)
    assert response.status_code == 201, response.text


async def test_nul_in_session_notes_is_refused(ipt: httpx.AsyncClient) -> None:
    course = await enrol(ipt, enrolment(await patient(ipt)))
    versions = await stored_versions(ipt)
    session = {"start": "2026-01-12T09:00:00Z", "minutes": 50, "outcome": "attended"}
    for body in (
        orjson.dumps(session | {"notes": "a\u0000b"}),
        orjson.dumps(session | {"notes": "a"})[:-1] + b', "notes": "b"}',
        orjson.dumps(session | {"notes": "a\u0007b"}),
    ):
        response = await ipt.post(
            f"/ipt/v1/courses/{course}/sessions",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        await refused(ipt, response, versions=versions)
