"""Chaining, _has, _include/_revinclude, _sort, _summary, _elements, _total and POST _search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ipt_core.ipt import codes

FHIR = {"Content-Type": "application/fhir+json"}
MRN = "urn:test:mrn"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
IPT_COURSE = [  # an IPT course (docs/fhir-mapping.md): sessions may link to it
    {"coding": [{"system": codes.SNOMED, "code": codes.IPT_THERAPY}]},
    {"coding": [{"system": codes.COURSE_TYPE_SYSTEM, "code": "acute"}]},
    {"coding": [{"system": codes.PROBLEM_AREA_SYSTEM, "code": "grief"}]},
]


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def search(client: httpx.AsyncClient, url: str, **params: str) -> dict[str, Any]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def entries(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


def encounter(patient_id: str, start: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start, "end": start.replace("T09", "T10")},
        **extra,
    }


@pytest.fixture
async def clinic(client: httpx.AsyncClient) -> dict[str, Any]:
    """Two patients; Ada has a course with three sessions and a PHQ-9; Bob has one session."""
    ada = await create(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Ada"}],
            "identifier": [{"system": MRN, "value": "A1"}],
        },
    )
    bob = await create(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": "Bob"}],
            "identifier": [{"system": MRN, "value": "B2"}],
        },
    )
    plan = await create(
        client,
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": IPT_COURSE,
            "period": {"start": "2026-01-01"},
            "subject": {"reference": f"Patient/{ada['id']}"},
        },
    )
    link = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.basedOn",
                "valueReference": {"reference": f"CarePlan/{plan['id']}"},
            }
        ]
    }
    sessions = [
        await create(client, encounter(ada["id"], f"2026-01-{day:02d}T09:00:00Z", **link))
        for day in (5, 19, 12)
    ]
    bob_session = await create(client, encounter(bob["id"], "2026-01-07T09:00:00Z"))
    phq = await create(
        client,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
            "subject": {"reference": f"Patient/{ada['id']}"},
            "encounter": {"reference": f"Encounter/{sessions[0]['id']}"},
            "valueInteger": 14,
        },
    )
    return {
        "ada": ada,
        "bob": bob,
        "plan": plan,
        "sessions": sessions,
        "bob_session": bob_session,
        "phq": phq,
    }


async def test_chained_search(client: httpx.AsyncClient, clinic: dict[str, Any]) -> None:
    ada_sessions = {f"Encounter/{s['id']}" for s in clinic["sessions"]}
    by_identifier = await search(
        client, "/fhir/Encounter", **{"subject:Patient.identifier": f"{MRN}|A1"}
    )
    assert set(entries(by_identifier)) == ada_sessions
    by_name = await search(client, "/fhir/Encounter", **{"patient.name": "bob"})
    assert entries(by_name) == [f"Encounter/{clinic['bob_session']['id']}"]
    by_course = await search(
        client, "/fhir/Observation", **{"encounter.careplan": clinic["plan"]["id"]}
    )
    assert entries(by_course) == [f"Observation/{clinic['phq']['id']}"]
    too_deep = await client.get("/fhir/Encounter", params={"subject.organization.name": "x"})
    assert too_deep.status_code == 400


async def test_has(client: httpx.AsyncClient, clinic: dict[str, Any]) -> None:
    with_phq = await search(client, "/fhir/Patient", **{"_has:Observation:patient:code": "44261-6"})
    assert entries(with_phq) == [f"Patient/{clinic['ada']['id']}"]
    with_course = await search(
        client, "/fhir/Patient", **{"_has:CarePlan:subject:status": "active"}
    )
    assert entries(with_course) == [f"Patient/{clinic['ada']['id']}"]
    nested = await client.get("/fhir/Patient", params={"_has:Observation:patient:_has:x:y:z": "1"})
    assert nested.status_code == 400


async def test_include_and_revinclude(client: httpx.AsyncClient, clinic: dict[str, Any]) -> None:
    ada = clinic["ada"]["id"]
    with_patient = await search(
        client, "/fhir/Encounter", patient=ada, _include="Encounter:subject"
    )
    assert len(entries(with_patient)) == 3
    assert entries(with_patient, "include") == [f"Patient/{ada}"]
    assert with_patient["total"] == 3  # includes are not counted
    rev = await search(client, "/fhir/Patient", _id=ada, _revinclude="Encounter:subject")
    assert entries(rev) == [f"Patient/{ada}"]
    assert set(entries(rev, "include")) == {f"Encounter/{s['id']}" for s in clinic["sessions"]}
    iterate = await client.get(
        "/fhir/Observation",
        params=[
            ("_id", clinic["phq"]["id"]),
            ("_include", "Observation:encounter"),
            ("_include:iterate", "Encounter:careplan"),
        ],
    )
    included = set(entries(iterate.json(), "include"))
    assert included == {
        f"Encounter/{clinic['sessions'][0]['id']}",
        f"CarePlan/{clinic['plan']['id']}",
    }


async def test_sort(client: httpx.AsyncClient, clinic: dict[str, Any]) -> None:
    ada = clinic["ada"]["id"]
    starts = {s["id"]: s["period"]["start"] for s in clinic["sessions"]}
    newest_first = await search(client, "/fhir/Encounter", patient=ada, _sort="-date")
    found = [e["resource"]["period"]["start"] for e in newest_first["entry"]]
    assert found == sorted(starts.values(), reverse=True)
    oldest_first = await search(client, "/fhir/Encounter", patient=ada, _sort="date")
    assert [e["resource"]["period"]["start"] for e in oldest_first["entry"]] == sorted(
        starts.values()
    )
    by_update = await search(client, "/fhir/Encounter", _sort="-_lastUpdated")
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in by_update["entry"]]
    assert stamps == sorted(stamps, reverse=True)
    by_status_then_date = await search(client, "/fhir/Encounter", _sort="status,-date")
    assert len(by_status_then_date["entry"]) == 4


async def test_summary_elements_and_total(
    client: httpx.AsyncClient, clinic: dict[str, Any]
) -> None:
    count = await search(client, "/fhir/Encounter", _summary="count")
    assert count["total"] == 4
    assert "entry" not in count
    zero = await search(client, "/fhir/Encounter", _count="0", _totalMethod="count")
    assert zero["total"] == 4
    assert "entry" not in zero
    no_total = await search(client, "/fhir/Encounter", _total="none")
    assert "total" not in no_total
    assert len(no_total["entry"]) == 4
    summary = await search(client, "/fhir/Encounter", _summary="true", _count="1")
    resource = summary["entry"][0]["resource"]
    assert "period" not in resource
    assert "class" in resource
    assert "status" in resource
    assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"
    elements = await search(client, "/fhir/Encounter", _elements="period", _count="1")
    resource = elements["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "period", "status", "class"}


async def test_post_search_is_like_get(client: httpx.AsyncClient, clinic: dict[str, Any]) -> None:
    ada = clinic["ada"]["id"]
    form = {"patient": ada, "_sort": "-date", "_count": "2"}
    posted = await client.post("/fhir/Encounter/_search", data=form)
    assert posted.status_code == 200, posted.text
    got = await search(client, "/fhir/Encounter", **form)
    assert entries(posted.json()) == entries(got)
    next_url = next(lk["url"] for lk in posted.json()["link"] if lk["relation"] == "next")
    assert next_url.startswith("http://testserver/fhir/Encounter?")
    assert f"patient={ada}" in next_url
    rest = (await client.get(next_url)).json()
    assert len(entries(rest)) == 1
    wrong_type = await client.post(
        "/fhir/Encounter/_search", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415
