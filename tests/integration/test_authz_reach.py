"""A search or transaction reaches only the types the token may read (issue 12, first rows).

`_include`, `_revinclude` and `:iterate` leave out the types the token may not read, with a
warning; chains and `_has` into such types, and transaction entries with conditional
references or criteria on them, are refused with 403 before anything is resolved, so the
answer is the same whether a match exists or not (no existence oracle).
"""

from __future__ import annotations

from typing import Any

from tests.integration.authz_records import create, patient_record, resource_of
from tests.integration.authz_support import ADMIN, FHIR, Mint, Secured, bearer

_REVINCLUDE_ALL = (
    "&_revinclude=Observation:subject&_revinclude=CarePlan:subject"
    "&_revinclude=Condition:subject&_revinclude=Goal:subject"
)


def _kinds(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle.get("entry", [])
    )


def _warnings(bundle: dict[str, Any]) -> list[str]:
    return [
        issue["diagnostics"]
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "outcome"
        for issue in e["resource"]["issue"]
        if issue["severity"] == "warning"
    ]


async def _get(secured: Secured, token: str, url: str, status: int = 200) -> dict[str, Any]:
    response = await secured.http.get(url, headers=bearer(token))
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_revinclude_leaves_out_types_the_token_may_not_read(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    url = f"/fhir/Patient?_id={ids['Patient']}{_REVINCLUDE_ALL}"
    everything = await _get(secured, mint(ADMIN), url)
    assert ("include", "Observation") in _kinds(everything)  # the query does reach them

    only_patients = await _get(secured, mint("system/Patient.rs"), url)
    assert _kinds(only_patients) == [("match", "Patient"), ("outcome", "OperationOutcome")]
    warnings = _warnings(only_patients)
    for leaked in ("Observation", "CarePlan", "Condition", "Goal"):
        assert any(leaked in w for w in warnings), warnings


async def test_include_of_a_type_the_token_may_not_read_is_left_out(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    for include in ("CarePlan:subject", "CarePlan:subject:Patient", "CarePlan:patient"):
        url = f"/fhir/CarePlan?_id={ids['CarePlan']}&_include={include}"
        assert ("include", "Patient") in _kinds(await _get(secured, mint(ADMIN), url))
        bundle = await _get(secured, mint("system/CarePlan.rs"), url)
        assert _kinds(bundle) == [("match", "CarePlan"), ("outcome", "OperationOutcome")]


async def test_iterate_does_not_reach_an_unreadable_type(secured: Secured, mint: Mint) -> None:
    admin = mint(ADMIN)
    ids = await patient_record(secured, admin)
    await create(
        secured,
        admin,
        "Observation",
        ids["Patient"],
        encounter={"reference": f"Encounter/{ids['Encounter']}"},
    )
    url = (
        f"/fhir/Encounter?_id={ids['Encounter']}&_revinclude=Observation:encounter"
        "&_include:iterate=Observation:subject"
    )
    assert ("include", "Patient") in _kinds(await _get(secured, admin, url))
    bundle = await _get(secured, mint("system/Encounter.rs system/Observation.rs"), url)
    assert ("include", "Observation") in _kinds(bundle)
    assert ("include", "Patient") not in _kinds(bundle)
    assert any("Patient" in w for w in _warnings(bundle))


async def test_chains_into_an_unreadable_type_are_refused(secured: Secured, mint: Mint) -> None:
    await patient_record(secured, mint(ADMIN))
    for chain in ("subject:Patient.name=Authz", "subject.name=Authz", "patient.family=Authz"):
        url = f"/fhir/Observation?{chain}"
        assert (await _get(secured, mint(ADMIN), url))["total"] == 1
        refused = await _get(secured, mint("system/Observation.rs"), url, 403)
        assert refused["issue"][0]["code"] == "forbidden"
        assert "Patient" in refused["issue"][0]["diagnostics"]


async def test_has_of_an_unreadable_type_is_refused_whether_or_not_it_matches(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    existing = f"/fhir/Patient?_has:CarePlan:subject:_id={ids['CarePlan']}"
    missing = "/fhir/Patient?_has:CarePlan:subject:_id=no-such-careplan"
    assert (await _get(secured, mint(ADMIN), existing))["total"] == 1
    assert (await _get(secured, mint(ADMIN), missing))["total"] == 0
    patients_only = mint("system/Patient.rs")
    first = await _get(secured, patients_only, existing, 403)
    second = await _get(secured, patients_only, missing, 403)
    assert first == second


async def test_batch_search_entries_are_planned_like_searches(secured: Secured, mint: Mint) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient?_id={ids['Patient']}{_REVINCLUDE_ALL}"}},
            {"request": {"method": "GET", "url": f"Patient?_has:Goal:subject:_id={ids['Goal']}"}},
            {"request": {"method": "GET", "url": f"Goal/{ids['Goal']}"}},
        ],
    }
    response = await secured.http.post(
        "/fhir", json=bundle, headers=bearer(mint("system/Patient.rs"), **FHIR)
    )
    assert response.status_code == 200, response.text
    first, has, read = response.json()["entry"]
    assert _kinds(first["resource"]) == [("match", "Patient"), ("outcome", "OperationOutcome")]
    assert has["response"]["status"].startswith("403")
    assert read["response"]["status"].startswith("403")


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _observation_based_on(criteria: str) -> dict[str, Any]:
    body = resource_of("Observation", "none") | {"basedOn": [{"reference": criteria}]}
    return {"resource": body, "request": {"method": "POST", "url": "Observation"}}


async def _post_bundle(secured: Secured, token: str, bundle: dict[str, Any]) -> int:
    response = await secured.http.post("/fhir", json=bundle, headers=bearer(token, **FHIR))
    return response.status_code


async def test_conditional_references_are_authorized_before_they_are_resolved(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    existing = _transaction(_observation_based_on(f"CarePlan?_id={ids['CarePlan']}"))
    missing = _transaction(_observation_based_on("CarePlan?_id=no-such-careplan"))
    admin = mint(ADMIN)
    assert await _post_bundle(secured, admin, existing) == 200
    assert await _post_bundle(secured, admin, missing) == 412
    observations_only = mint("system/Observation.cruds")
    assert await _post_bundle(secured, observations_only, existing) == 403
    assert await _post_bundle(secured, observations_only, missing) == 403


async def test_conditional_entries_are_authorized_before_their_criteria_are_matched(
    secured: Secured, mint: Mint
) -> None:
    ids = await patient_record(secured, mint(ADMIN))
    token = mint("system/Observation.cruds")
    for criteria in (f"_id={ids['CarePlan']}", "_id=no-such-careplan"):
        careplan = resource_of("CarePlan", ids["Patient"])
        put = {"resource": careplan, "request": {"method": "PUT", "url": f"CarePlan?{criteria}"}}
        assert await _post_bundle(secured, token, _transaction(put)) == 403
        delete = {"request": {"method": "DELETE", "url": f"CarePlan?{criteria}"}}
        assert await _post_bundle(secured, token, _transaction(delete)) == 403
        # Criteria of a permitted type that chain into a forbidden one are refused too.
        chained = {
            "resource": resource_of("Observation", ids["Patient"]),
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": f"subject:Patient._id={ids['Patient']}",
            },
        }
        assert await _post_bundle(secured, token, _transaction(chained)) == 403


async def test_a_refused_entry_leaves_the_whole_transaction_unwritten(
    secured: Secured, mint: Mint
) -> None:
    token = mint("system/Observation.c")
    bundle = _transaction(
        {
            "resource": resource_of("Observation", "p"),
            "request": {"method": "POST", "url": "Observation"},
        },
        {
            "resource": resource_of("Condition", "p"),
            "request": {"method": "POST", "url": "Condition"},
        },
    )
    assert await _post_bundle(secured, token, bundle) == 403
    found = await _get(secured, mint(ADMIN), "/fhir/Observation")
    assert found["total"] == 0


async def test_conditional_routes_refuse_criteria_reaching_unreadable_types(
    secured: Secured, mint: Mint
) -> None:
    token = mint("system/Observation.cruds")
    body = resource_of("Observation", "p")
    response = await secured.http.put(
        "/fhir/Observation?subject:Patient.name=Authz", json=body, headers=bearer(token, **FHIR)
    )
    assert response.status_code == 403
    response = await secured.http.delete(
        "/fhir/Patient?_has:CarePlan:subject:_id=x", headers=bearer(mint("system/Patient.cruds"))
    )
    assert response.status_code == 403


async def test_batch_entry_criteria_are_authorized_before_they_are_matched(
    secured: Secured, mint: Mint
) -> None:
    token = mint("system/Observation.cruds")
    entries = [
        {"request": {"method": "DELETE", "url": "Observation?subject:Patient.name=Authz"}},
        {
            "resource": resource_of("Observation", "p"),
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": "subject:Patient.family=Authz",
            },
        },
    ]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    response = await secured.http.post("/fhir", json=bundle, headers=bearer(token, **FHIR))
    assert response.status_code == 200
    statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
    assert statuses == ["403", "403"]
