"""Search parameters by type: token, string, date, number/quantity, reference, _id, _lastUpdated."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

FHIR = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"
DISPLAYS = {"44261-6": "PHQ-9 total score", "70274-6": "GAD-7 total score"}


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def ids(client: httpx.AsyncClient, url: str, **params: str) -> set[str]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    found = {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
    assert bundle["total"] == len(found)
    return found


def observation(code: str, value: int, when: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [{"system": LOINC, "code": code, "display": DISPLAYS.get(code, "X")}],
            "text": "Depression severity",
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueInteger": value,
        **extra,
    }


@pytest.fixture
async def observations(client: httpx.AsyncClient) -> dict[str, str]:
    made = {
        "phq_jan": await create(client, observation("44261-6", 18, "2026-01-05T10:00:00Z")),
        "phq_feb": await create(client, observation("44261-6", 9, "2026-02-10T10:00:00Z")),
        "gad": await create(client, observation("70274-6", 12, "2026-02-11")),
        "local": await create(
            client,
            {**observation("x1", 5, "2025-12-31T23:30:00Z"), "code": {"coding": [{"code": "x1"}]}},
        ),
    }
    return {name: body["id"] for name, body in made.items()}


async def test_token_forms(client: httpx.AsyncClient, observations: dict[str, str]) -> None:
    o = observations
    phq = {o["phq_jan"], o["phq_feb"]}
    assert await ids(client, "/fhir/Observation", code=f"{LOINC}|44261-6") == phq
    assert await ids(client, "/fhir/Observation", code="44261-6") == phq
    assert await ids(client, "/fhir/Observation", code=f"{LOINC}|") == {*phq, o["gad"]}
    assert await ids(client, "/fhir/Observation", code="|x1") == {o["local"]}
    assert await ids(client, "/fhir/Observation", code="|44261-6") == set()
    assert await ids(client, "/fhir/Observation", code="44261-6,70274-6") == {*phq, o["gad"]}


async def test_token_modifiers(client: httpx.AsyncClient, observations: dict[str, str]) -> None:
    o = observations
    assert await ids(client, "/fhir/Observation", **{"code:not": "44261-6"}) == {
        o["gad"],
        o["local"],
    }
    assert await ids(client, "/fhir/Observation", **{"code:text": "phq"}) == {
        o["phq_jan"],
        o["phq_feb"],
    }
    assert await ids(client, "/fhir/Observation", **{"code:text": "severity"}) == {
        o["phq_jan"],
        o["phq_feb"],
        o["gad"],
    }
    assert await ids(client, "/fhir/Observation", **{"category:missing": "true"}) == set(o.values())
    assert await ids(client, "/fhir/Observation", **{"category:missing": "false"}) == set()


async def test_string_modifiers(client: httpx.AsyncClient) -> None:
    ada = await create(
        client, {"resourceType": "Patient", "name": [{"family": "Lövelace", "given": ["Ada"]}]}
    )
    bob = await create(client, {"resourceType": "Patient", "name": [{"family": "Lovell"}]})
    await create(client, {"resourceType": "Patient", "gender": "other"})
    assert await ids(client, "/fhir/Patient", family="love") == {ada["id"], bob["id"]}
    assert await ids(client, "/fhir/Patient", name="LOVEL") == {ada["id"], bob["id"]}
    assert await ids(client, "/fhir/Patient", **{"family:exact": "Lövelace"}) == {ada["id"]}
    assert await ids(client, "/fhir/Patient", **{"family:exact": "lövelace"}) == set()
    assert await ids(client, "/fhir/Patient", **{"family:contains": "vell"}) == {bob["id"]}
    assert await ids(client, "/fhir/Patient", given="ada") == {ada["id"]}
    missing = await ids(client, "/fhir/Patient", **{"name:missing": "true"})
    assert ada["id"] not in missing
    assert len(missing) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05", {"phq_jan"}),
        ("eq2026-01", {"phq_jan"}),
        ("2026", {"phq_jan", "phq_feb", "gad"}),
        ("ne2026", {"local"}),
        ("lt2026-01-05", {"local"}),
        ("le2026-01-05", {"local", "phq_jan"}),
        ("gt2026-02-10", {"gad"}),
        ("ge2026-02-10", {"phq_feb", "gad"}),
        ("sa2026-02-10", {"gad"}),
        ("eb2026-01-05", {"local"}),
        ("2026-01-05T10:00:00Z", {"phq_jan"}),
        ("2026-01-05T11:00:00+01:00", {"phq_jan"}),
        ("gt2025-12-31T23:00:00Z", {"local", "phq_jan", "phq_feb", "gad"}),
    ],
)
async def test_date_prefixes_and_precision(
    client: httpx.AsyncClient, observations: dict[str, str], value: str, expected: set[str]
) -> None:
    found = await ids(client, "/fhir/Observation", date=value)
    assert found == {observations[name] for name in expected}


async def test_period_dates(client: httpx.AsyncClient) -> None:
    encounter = await create(
        client,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T09:50:00Z"},
        },
    )
    ongoing = await create(
        client,
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2026-03-02T10:00:00Z"},
        },
    )
    assert await ids(client, "/fhir/Encounter", date="2026-03-02") == {encounter["id"]}
    assert await ids(client, "/fhir/Encounter", date="ge2026-03-02") == {
        encounter["id"],
        ongoing["id"],
    }
    assert await ids(client, "/fhir/Encounter", date="gt2027-01-01") == {ongoing["id"]}
    both = await client.get(
        "/fhir/Encounter",
        params=[("date", "ge2026-03-02T09:30:00Z"), ("date", "le2026-03-02T09:40:00Z")],
    )
    assert [e["resource"]["id"] for e in both.json()["entry"]] == [encounter["id"]]  # AND


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9", {"phq_feb"}),
        ("18", {"phq_jan"}),
        ("gt10", {"phq_jan", "gad"}),
        ("le9", {"phq_feb", "local"}),
        ("ne9", {"phq_jan", "gad", "local"}),
        ("ap10", {"phq_feb"}),
        ("1e1", {"phq_feb", "gad", "local"}),
        ("18||", {"phq_jan"}),
    ],
)
async def test_number_prefixes(
    client: httpx.AsyncClient, observations: dict[str, str], value: str, expected: set[str]
) -> None:
    found = await ids(client, "/fhir/Observation", **{"value-quantity": value})
    assert found == {observations[name] for name in expected}


async def test_quantity_units(client: httpx.AsyncClient) -> None:
    ucum = "http://unitsofmeasure.org"
    body = observation("29463-7", 0, "2026-01-01")
    del body["valueInteger"]
    body["valueQuantity"] = {"value": 70.5, "system": ucum, "code": "kg", "unit": "kg"}
    weight = await create(client, body)
    found = await ids(client, "/fhir/Observation", **{"value-quantity": f"70.5|{ucum}|kg"})
    assert found == {weight["id"]}
    assert await ids(client, "/fhir/Observation", **{"value-quantity": "70.5||kg"}) == {
        weight["id"]
    }
    assert await ids(client, "/fhir/Observation", **{"value-quantity": "70.5||g"}) == set()


async def test_reference_forms(client: httpx.AsyncClient) -> None:
    patient = await create(client, {"resourceType": "Patient"})
    other = await create(client, {"resourceType": "Patient"})
    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan"}
    mine = await create(client, {**plan, "subject": {"reference": f"Patient/{patient['id']}"}})
    await create(client, {**plan, "subject": {"reference": f"Patient/{other['id']}"}})
    pid = patient["id"]
    for value in (f"Patient/{pid}", pid, f"http://testserver/fhir/Patient/{pid}"):
        assert await ids(client, "/fhir/CarePlan", subject=value) == {mine["id"]}
        assert await ids(client, "/fhir/CarePlan", patient=value) == {mine["id"]}
    assert await ids(client, "/fhir/CarePlan", **{"subject:Patient": pid}) == {mine["id"]}
    assert await ids(client, "/fhir/CarePlan", **{"subject:Group": pid}) == set()


async def test_id_and_last_updated(client: httpx.AsyncClient) -> None:
    first = await create(client, {"resourceType": "Patient"})
    second = await create(client, {"resourceType": "Patient"})
    assert await ids(client, "/fhir/Patient", _id=f"{first['id']},{second['id']}") == {
        first["id"],
        second["id"],
    }
    since = second["meta"]["lastUpdated"]
    assert await ids(client, "/fhir/Patient", _lastUpdated=f"ge{since}") == {second["id"]}
    assert await ids(client, "/fhir/Patient", _lastUpdated=f"lt{since}") == {first["id"]}


async def test_deleted_resources_are_not_found(client: httpx.AsyncClient) -> None:
    kept = await create(client, {"resourceType": "Patient", "gender": "female"})
    gone = await create(client, {"resourceType": "Patient", "gender": "female"})
    await client.delete(f"/fhir/Patient/{gone['id']}")
    assert await ids(client, "/fhir/Patient", gender="female") == {kept["id"]}
    assert await ids(client, "/fhir/Patient") == {kept["id"]}


async def test_unknown_parameters_are_reported_or_refused(client: httpx.AsyncClient) -> None:
    await create(client, {"resourceType": "Patient"})
    lenient = (await client.get("/fhir/Patient", params={"shoe-size": "12"})).json()
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"
    assert "shoe-size" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert lenient["total"] == 1
    strict = await client.get(
        "/fhir/Patient", params={"shoe-size": "12"}, headers={"Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    vendor = (
        await client.get(
            "/fhir/Patient", params={"_totalMethod": "count"}, headers={"Prefer": "handling=strict"}
        )
    ).json()
    assert all(e["search"]["mode"] == "match" for e in vendor["entry"])


@pytest.mark.parametrize(
    "params",
    [
        {"gender:contains": "f"},
        {"birthdate": "yesterday"},
        {"_count": "many"},
        {"_sort": "shoe-size"},
        {"_summary": "maybe"},
        {"_include": "Patient:nothing"},
    ],
)
async def test_bad_searches_are_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/fhir/Patient", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
