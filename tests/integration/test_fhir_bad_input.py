"""Bad input gets the right OperationOutcome and stores nothing."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

FHIR = {"Content-Type": "application/fhir+json"}


async def stored_versions(client: httpx.AsyncClient) -> int:
    history = (await client.get("/fhir/_history?_count=1000")).json()
    return len(history.get("entry", []))


async def assert_refused(
    response: httpx.Response, client: httpx.AsyncClient, status: int, code: str
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    assert await stored_versions(client) == 0
    return outcome


async def test_invalid_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR
    )
    await assert_refused(response, client, 400, "invalid")


async def test_json_that_is_not_an_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/fhir/Patient", content=b"[1, 2]", headers=FHIR)
    await assert_refused(response, client, 400, "invalid")


async def test_wrong_resource_type_for_url(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Practitioner", "id": "x"}
    response = await client.put("/fhir/Patient/x", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, "invalid")
    assert "Practitioner" in outcome["issue"][0]["diagnostics"]
    create = await client.post("/fhir/Patient", json={"resourceType": "Practitioner"}, headers=FHIR)
    await assert_refused(create, client, 400, "invalid")


async def test_id_mismatch(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "id": "other"}
    response = await client.put("/fhir/Patient/mine", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, "invalid")
    assert outcome["issue"][0]["expression"] == ["Patient.id"]


async def test_unknown_element_is_reported_with_its_path(client: httpx.AsyncClient) -> None:
    body = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/1"},
        "activity": [{"detail": {"status": "scheduled", "colour": "red"}}],
    }
    response = await client.post("/fhir/CarePlan", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, "structure")
    assert outcome["issue"][0]["expression"] == ["CarePlan.activity[0].detail.colour"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (
            {
                "resourceType": "CarePlan",
                "status": "bogus",
                "intent": "plan",
                "subject": {"reference": "Patient/1"},
            },
            "CarePlan.status",
        ),
        (
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "wish",
                "subject": {"reference": "Patient/1"},
            },
            "CarePlan.intent",
        ),
        (
            {"resourceType": "Encounter", "status": "done", "class": {"code": "AMB"}},
            "Encounter.status",
        ),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": 1, "comparator": "~"},
            },
            "Observation.valueQuantity.comparator",
        ),
        ({"resourceType": "Patient", "gender": "f"}, "Patient.gender"),
    ],
)
async def test_bad_codes(client: httpx.AsyncClient, body: dict[str, Any], expression: str) -> None:
    response = await client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, "code-invalid")
    assert outcome["issue"][0]["expression"] == [expression]


async def test_missing_required_element(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "CarePlan", "status": "active", "subject": {"reference": "Patient/1"}}
    response = await client.post("/fhir/CarePlan", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, "required")
    assert outcome["issue"][0]["expression"] == ["CarePlan.intent"]


@pytest.mark.parametrize(
    ("contained", "expression"),
    [
        ({"id": "p"}, "Observation.contained[0].resourceType"),
        ({"resourceType": "NoSuchType", "id": "p"}, "Observation.contained[0].resourceType"),
        ({"resourceType": 7, "id": "p"}, "Observation.contained[0].resourceType"),
        ({"resourceType": "Coding", "code": "x"}, "Observation.contained[0].resourceType"),
        ({"resourceType": "DomainResource"}, "Observation.contained[0].resourceType"),
        (
            {"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]},
            "Observation.contained[0].contained",
        ),
    ],
)
async def test_contained_resources_the_models_cannot_take(
    client: httpx.AsyncClient, contained: dict[str, Any], expression: str
) -> None:
    # fhir.resources raised a TypeError or KeyError on these: a 500 before.
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    response = await client.post(
        "/fhir/Observation", json={**body, "contained": [contained]}, headers=FHIR
    )
    outcome = await assert_refused(response, client, 400, "structure")
    assert outcome["issue"][0]["expression"] == [expression]


@pytest.mark.parametrize(
    ("extra", "code", "expression"),
    [
        ({"meta": '{"versionId": "1"}'}, "value", "Patient.meta"),  # an element as JSON text
        ({"resource_type": "Patient"}, "structure", "Patient.resource_type"),
        (
            {"name": [{"family": "Doe", "resourceType": "HumanName"}]},
            "structure",
            "Patient.name[0].resourceType",
        ),
    ],
)
async def test_json_the_models_are_lenient_with(
    client: httpx.AsyncClient, extra: dict[str, Any], code: str, expression: str
) -> None:
    # fhir.resources takes these (it parses a string as an element, and its `__init__` takes
    # `resourceType`/`resource_type` out of any object). Before: `meta` as text was a 500
    # (the store set a version in a string), the other two 201s, stored as sent.
    body = {"resourceType": "Patient", "gender": "female", **extra}
    response = await client.post("/fhir/Patient", json=body, headers=FHIR)
    outcome = await assert_refused(response, client, 400, code)
    assert outcome["issue"][0]["expression"] == [expression]


async def test_nulls_and_empty_values(client: httpx.AsyncClient) -> None:
    body: dict[str, Any] = {"resourceType": "Patient", "gender": None, "name": []}
    response = await client.post("/fhir/Patient", json=body, headers=FHIR)
    await assert_refused(response, client, 400, "value")


async def test_body_over_the_limit(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "name": [{"text": "x" * (3 * 1024 * 1024)}]}
    response = await client.post("/fhir/Patient", content=orjson.dumps(body), headers=FHIR)
    await assert_refused(response, client, 413, "too-long")


async def test_deeply_nested_json(client: httpx.AsyncClient) -> None:
    nested: dict[str, Any] = {"url": "x"}
    for _ in range(100):
        nested = {"url": "x", "extension": [nested]}
    body = {"resourceType": "Patient", "extension": [nested]}
    response = await client.post("/fhir/Patient", json=body, headers=FHIR)
    await assert_refused(response, client, 400, "invalid")
    very_deep = b'{"resourceType":"Patient","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await client.post("/fhir/Patient", content=very_deep, headers=FHIR)
    await assert_refused(response, client, 400, "invalid")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/fhir+xml", None]
)
async def test_non_json_content_type(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient"}', headers=headers
    )
    await assert_refused(response, client, 415, "not-supported")


async def test_unacceptable_format(client: httpx.AsyncClient) -> None:
    xml = await client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 406
    assert (await client.get("/fhir/metadata?_format=xml")).status_code == 406


async def test_unknown_type_and_id(client: httpx.AsyncClient) -> None:
    unknown_type = await client.get("/fhir/Spaceship/1")
    assert unknown_type.status_code == 404
    assert unknown_type.json()["issue"][0]["code"] == "not-found"
    assert (await client.post("/fhir/Spaceship", json={}, headers=FHIR)).status_code == 404
    assert (await client.get("/fhir/Patient/nobody")).status_code == 404


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.post("/fhir/metadata", json={}, headers=FHIR)
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_bad_if_match(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "id": "p"}
    response = await client.put(
        "/fhir/Patient/p", json=body, headers={**FHIR, "If-Match": "yesterday"}
    )
    await assert_refused(response, client, 400, "invalid")


async def test_unexpected_error_is_an_outcome_without_internals(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipt_core.fhir import _repository

    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(_repository, "current_on_driver", explode)  # the read by id
    response = await client.get("/fhir/Patient/x")
    assert response.status_code == 500
    assert response.json()["issue"][0]["code"] == "exception"
    assert "secret" not in response.text
