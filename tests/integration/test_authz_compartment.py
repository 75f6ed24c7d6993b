"""Patient compartments: a `patient/` token reaches its own patient's record only.

Reads of another patient's resources answer 404 (as for a resource that does not exist, so
nothing tells the caller it does), searches and histories are silently filtered, includes
never bring in another patient's resources, writes outside the compartment are refused, and
the domain API, status and dashboard reads follow the same rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_worker.recompute import Recomputer
from tests.integration.authz_records import create, patient_record, resource_of
from tests.integration.authz_support import ADMIN, FHIR, Mint, Secured, bearer
from tests.integration.ipt_helpers import WORKED_NOW, Clock, enrolment

Records = tuple[dict[str, str], dict[str, str]]


@pytest.fixture
async def records(secured: Secured, mint: Mint) -> Records:
    """Two patients' records: (ours, theirs)."""
    admin = mint(ADMIN)
    return await patient_record(secured, admin), await patient_record(secured, admin)


async def _status(secured: Secured, token: str, method: str, url: str, **kw: Any) -> int:
    response = await secured.http.request(method, url, headers=bearer(token, **FHIR), **kw)
    return response.status_code


async def _ids(secured: Secured, token: str, url: str) -> list[str]:
    response = await secured.http.get(url, headers=bearer(token))
    assert response.status_code == 200, response.text
    return sorted(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if e.get("search", {}).get("mode", "match") != "outcome" and "resource" in e
    )


@pytest.mark.parametrize("scope", ["patient/*.read", "patient/*.rs"])
async def test_reads_of_another_patients_record_are_404(
    secured: Secured, mint: Mint, records: Records, scope: str
) -> None:
    ours, theirs = records
    token = mint(scope, patient=ours["Patient"])
    for resource_type, id_ in ours.items():
        assert await _status(secured, token, "GET", f"/fhir/{resource_type}/{id_}") == 200
        vread = f"/fhir/{resource_type}/{id_}/_history/1"
        assert await _status(secured, token, "GET", vread) == 200
    for resource_type, id_ in theirs.items():
        response = await secured.http.get(f"/fhir/{resource_type}/{id_}", headers=bearer(token))
        missing = await secured.http.get(f"/fhir/{resource_type}/nope", headers=bearer(token))
        assert response.status_code == missing.status_code == 404
        vread = f"/fhir/{resource_type}/{id_}/_history/1"
        assert await _status(secured, token, "GET", vread) == 404
        history = f"/fhir/{resource_type}/{id_}/_history"
        assert await _status(secured, token, "GET", history) == 404


async def test_a_v1_type_scope_reads_its_type_only(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/Observation.read", patient=ours["Patient"])
    assert await _status(secured, token, "GET", f"/fhir/Observation/{ours['Observation']}") == 200
    assert await _status(secured, token, "GET", f"/fhir/Observation/{theirs['Observation']}") == 404
    assert await _status(secured, token, "GET", f"/fhir/CarePlan/{ours['CarePlan']}") == 403


async def test_a_patient_scope_without_a_patient_claim_reaches_nothing(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, _ = records
    token = mint("patient/*.rs")
    assert await _status(secured, token, "GET", f"/fhir/Patient/{ours['Patient']}") == 404
    assert await _ids(secured, token, "/fhir/Observation") == []


async def test_searches_are_filtered_to_the_compartment(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/*.rs", patient=ours["Patient"])
    for resource_type in ours:
        found = await _ids(secured, token, f"/fhir/{resource_type}")
        assert found == [f"{resource_type}/{ours[resource_type]}"]
    assert (
        await _ids(secured, token, f"/fhir/Observation?subject=Patient/{theirs['Patient']}") == []
    )
    assert await _ids(secured, token, f"/fhir/Patient?_id={theirs['Patient']}") == []
    # Practitioners are in no patient's compartment: the scope decides alone.
    practitioner = await create(secured, mint(ADMIN), "Practitioner")
    assert await _ids(secured, token, "/fhir/Practitioner") == [f"Practitioner/{practitioner}"]


async def test_includes_never_bring_in_another_patients_resources(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    admin = mint(ADMIN)
    # Our Observation points at their Encounter: following it must not reveal it.
    await create(
        secured,
        admin,
        "Observation",
        ours["Patient"],
        encounter={"reference": f"Encounter/{theirs['Encounter']}"},
    )
    token = mint("patient/*.rs", patient=ours["Patient"])
    found = await _ids(secured, token, "/fhir/Observation?_include=Observation:encounter")
    assert f"Encounter/{theirs['Encounter']}" not in found
    assert f"Encounter/{theirs['Encounter']}" in await _ids(
        secured, admin, "/fhir/Observation?_include=Observation:encounter"
    )
    revinclude = "/fhir/Patient?_revinclude=Observation:subject&_revinclude=CarePlan:subject"
    found = await _ids(secured, token, revinclude)
    assert all(ref.split("/")[1] not in theirs.values() for ref in found)
    assert f"Observation/{ours['Observation']}" in found


async def test_has_is_refused_with_patient_scopes(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, _ = records
    token = mint("patient/*.rs", patient=ours["Patient"])
    url = "/fhir/Practitioner?_has:Encounter:participant:status=finished"
    assert await _status(secured, token, "GET", url) == 403


async def test_chains_into_compartment_types_are_refused_with_patient_scopes(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/*.rs", patient=ours["Patient"])
    # An Appointment of ours may have their patient as another actor: no chain may probe it.
    for chain in ("actor:Patient.family=Authz", "patient.name=Authz"):
        assert await _status(secured, token, "GET", f"/fhir/Appointment?{chain}") == 403
    assert await _status(secured, token, "GET", "/fhir/Observation?encounter.status=x") == 403
    practitioner = await create(secured, mint(ADMIN), "Practitioner")
    await create(
        secured,
        mint(ADMIN),
        "Encounter",
        ours["Patient"],
        participant=[{"individual": {"reference": f"Practitioner/{practitioner}"}}],
    )
    found = await _ids(secured, token, "/fhir/Encounter?participant:Practitioner.family=Therapist")
    assert len(found) == 1
    assert theirs


async def test_histories_are_filtered_to_the_compartment(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/*.rs", patient=ours["Patient"])
    type_history = await _ids(secured, token, "/fhir/Observation/_history")
    assert type_history == [f"Observation/{ours['Observation']}"]
    everything = await _ids(secured, token, "/fhir/_history")
    assert sorted(everything) == sorted(f"{t}/{i}" for t, i in ours.items())
    own = await _ids(secured, token, f"/fhir/CarePlan/{ours['CarePlan']}/_history")
    assert own == [f"CarePlan/{ours['CarePlan']}"]
    assert theirs  # their versions were in the system history an admin sees
    assert len(await _ids(secured, mint(ADMIN), "/fhir/_history")) == 2 * len(ours)


async def test_writes_outside_the_compartment_are_refused(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/*.cruds", patient=ours["Patient"])
    admin = mint(ADMIN)
    theirs_body = resource_of("Observation", theirs["Patient"])
    assert await _status(secured, token, "POST", "/fhir/Observation", json=theirs_body) == 403
    ours_body = resource_of("Observation", ours["Patient"])
    assert await _status(secured, token, "POST", "/fhir/Observation", json=ours_body) == 201
    their_observation = f"/fhir/Observation/{theirs['Observation']}"
    update = {**ours_body, "id": theirs["Observation"]}
    assert await _status(secured, token, "PUT", their_observation, json=update) == 404
    assert await _status(secured, token, "DELETE", their_observation) == 404
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    patched = await secured.http.patch(
        their_observation,
        json=patch,
        headers=bearer(token, **{"Content-Type": "application/json-patch+json"}),
    )
    assert patched.status_code == 404
    unchanged = await secured.http.get(their_observation, headers=bearer(admin))
    assert unchanged.json()["meta"]["versionId"] == "1"
    # Moving our own resource to another patient is refused too.
    ours_moved = {**theirs_body, "id": ours["Observation"]}
    moved = await _status(
        secured, token, "PUT", f"/fhir/Observation/{ours['Observation']}", json=ours_moved
    )
    assert moved == 403
    assert await _ids(secured, admin, f"/fhir/Observation?subject=Patient/{theirs['Patient']}") == [
        f"Observation/{theirs['Observation']}"
    ]
    # Types outside every compartment cannot be written with patient/ scopes.
    practitioner = resource_of("Practitioner", "none")
    assert await _status(secured, token, "POST", "/fhir/Practitioner", json=practitioner) == 403


async def test_transaction_entries_are_held_to_the_compartment(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    token = mint("patient/*.cruds", patient=ours["Patient"])

    def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}

    read_theirs = {"request": {"method": "GET", "url": f"Goal/{theirs['Goal']}"}}
    assert await _status(secured, token, "POST", "/fhir", json=bundle(read_theirs)) == 404
    # A conditional reference to their CarePlan resolves like one that does not exist.
    observation = resource_of("Observation", ours["Patient"]) | {
        "basedOn": [{"reference": f"CarePlan?_id={theirs['CarePlan']}"}]
    }
    post = {"resource": observation, "request": {"method": "POST", "url": "Observation"}}
    assert await _status(secured, token, "POST", "/fhir", json=bundle(post)) == 412


async def _courses(secured: Secured, mint: Mint, records: Records) -> tuple[str, str]:
    admin = mint(ADMIN)
    ours, theirs = records
    made = []
    for patient in (ours["Patient"], theirs["Patient"]):
        response = await secured.http.post(
            "/ipt/v1/courses", json=enrolment(f"Patient/{patient}"), headers=bearer(admin)
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    return made[0], made[1]


async def test_the_domain_api_is_held_to_the_compartment(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    our_course, their_course = await _courses(secured, mint, records)
    token = mint("patient/*.cruds", patient=ours["Patient"])
    listed = await secured.http.get("/ipt/v1/courses", headers=bearer(token))
    assert [c["id"] for c in listed.json()["courses"]] == [our_course]
    other = await secured.http.get(
        f"/ipt/v1/courses?patient=Patient/{theirs['Patient']}", headers=bearer(token)
    )
    assert other.json()["courses"] == []
    assert await _status(secured, token, "GET", f"/ipt/v1/courses/{our_course}") == 200
    assert await _status(secured, token, "GET", f"/ipt/v1/courses/{their_course}") == 404
    for action in ("activate", "complete", "resume"):
        url = f"/ipt/v1/courses/{their_course}/{action}"
        assert await _status(secured, token, "POST", url) == 404
    session = {"minutes": 60, "outcome": "attended", "start": "2026-01-12T09:00:00Z"}
    url = f"/ipt/v1/courses/{their_course}/sessions"
    assert await _status(secured, token, "POST", url, json=session) == 404
    # Enrolling another patient is a write outside the compartment; our own is not.
    enrol = enrolment(f"Patient/{theirs['Patient']}")
    assert await _status(secured, token, "POST", "/ipt/v1/courses", json=enrol) == 403
    own = enrolment(f"Patient/{ours['Patient']}")
    assert await _status(secured, token, "POST", "/ipt/v1/courses", json=own) == 201
    listed = await secured.http.get("/ipt/v1/courses", headers=bearer(mint(ADMIN)))
    assert len(listed.json()["courses"]) == 3  # the refused enrolment left nothing behind


async def test_status_and_dashboard_reads_are_held_to_the_compartment(
    secured: Secured, mint: Mint, records: Records, db: AsyncEngine
) -> None:
    ours, _ = records
    our_course, their_course = await _courses(secured, mint, records)
    worker = Recomputer(db, clock=Clock(WORKED_NOW), listeners=write_listeners())
    try:
        while await worker.run_once():
            pass
    finally:
        await worker.close()
    token = mint("patient/*.rs", patient=ours["Patient"])
    for course, expected in ((our_course, 200), (their_course, 404)):
        for url in (
            f"/ipt/v1/courses/{course}/status",
            f"/ipt/v1/courses/{course}/status?as_of=2026-03-01T00:00:00Z",
            f"/fhir/CarePlan/{course}/$ipt-status",
        ):
            assert await _status(secured, token, "GET", url) == expected, url
    admin_summary = await secured.http.get("/ipt/v1/dashboard/summary", headers=bearer(mint(ADMIN)))
    assert admin_summary.json()["courses"] == 2
    summary = await secured.http.get("/ipt/v1/dashboard/summary", headers=bearer(token))
    assert summary.json()["courses"] == 1
    worklist = await secured.http.get(
        "/ipt/v1/dashboard/worklist?kind=overdue", headers=bearer(token)
    )
    assert worklist.status_code == 200
    assert {i["course_id"] for i in worklist.json()["items"]} <= {our_course}
    assert await _status(secured, token, "GET", "/ipt/v1/events") == 403
    assert await _status(secured, token, "GET", "/ipt/v1/webhooks") == 403


async def test_conditional_writes_never_match_another_patients_resource(
    secured: Secured, mint: Mint, records: Records
) -> None:
    ours, theirs = records
    admin = mint(ADMIN)
    token = mint("patient/*.cruds", patient=ours["Patient"])
    their_observation = f"/fhir/Observation/{theirs['Observation']}"
    criteria = f"_id={theirs['Observation']}"
    body = resource_of("Observation", ours["Patient"])
    # Their Observation matches the criteria, but not within our compartment: no match.
    created = await secured.http.put(
        f"/fhir/Observation?{criteria}", json=body, headers=bearer(token, **FHIR)
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] != theirs["Observation"]
    deleted = await secured.http.delete(f"/fhir/Observation?{criteria}", headers=bearer(token))
    assert deleted.status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    patched = await secured.http.patch(
        f"/fhir/Observation?{criteria}",
        json=patch,
        headers=bearer(token, **{"Content-Type": "application/json-patch+json"}),
    )
    assert patched.status_code in {404, 412}
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"Observation?{criteria}"}}],
    }
    assert await _status(secured, token, "POST", "/fhir", json=transaction) == 200
    unchanged = await secured.http.get(their_observation, headers=bearer(admin))
    assert unchanged.status_code == 200
    assert unchanged.json()["meta"]["versionId"] == "1"
