"""The scope matrix: every route and interaction succeeds with exactly the scopes it needs
and answers 403 without them (issue 12, "Done when").

For each case the "needed" token carries only the case's scopes; the "lacking" token carries
every scope of every type except the letter the case needs, so a check on the wrong type or
the wrong letter fails the test. A final test makes sure every operation of the OpenAPI
document has a case here (or is public on purpose).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from ipt_api.app import create_app
from ipt_core.fhir.registry import REGISTRY
from tests.integration.authz_records import create, patient_record, resource_of
from tests.integration.authz_support import ADMIN, FHIR, Mint, Secured, bearer
from tests.integration.ipt_helpers import enrolment
from tests.support.api import api_settings

# Letters of a v2 scope that grant each need (SMART v2: read by id is granted by r or s here).
_GRANTING = {"r": "r", "s": "s", "c": "c", "u": "u", "d": "d", "read": "rs"}
_ALL_TYPES = (*REGISTRY, "Subscription", "AuditEvent", "Endpoint")
_PUBLIC = {
    ("GET", "/fhir/metadata"),
    ("GET", "/fhir/.well-known/smart-configuration"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    *(("GET", f"/fhir/{t}") for t in ("CodeSystem", "SearchParameter", "StructureDefinition")),
    *(
        ("GET", f"/fhir/{t}/{{id}}")
        for t in ("CodeSystem", "SearchParameter", "StructureDefinition")
    ),
}
# Tested for refusal only (below): with a good token the stream never ends.
_REFUSAL_ONLY = {("GET", "/ipt/v1/events/stream")}
# Authorized by ownership, not by scope: only the client that kicked an export off may poll,
# download or delete it (tests/integration/test_bulk_export.py checks another client's 404).
_OWNER_ONLY = {
    ("GET", "/fhir/$export-status/{export_id}"),
    ("DELETE", "/fhir/$export-status/{export_id}"),
    ("GET", "/fhir/$export-file/{export_id}/{resource_type}.ndjson"),
}
JSON_PATCH = "application/json-patch+json"


@dataclass
class Case:
    """One request, the scopes it needs as (type, letter), and the route it exercises."""

    method: str
    url: str
    needs: list[tuple[str, str]]
    template: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    success_below: int = 400  # the needed token gets a status below this


def _needed_token(mint: Mint, needs: Iterable[tuple[str, str]]) -> str:
    by_type: dict[str, str] = {}
    for type_, letter in needs:
        by_type[type_] = by_type.get(type_, "") + ("r" if letter == "read" else letter)
    return mint(" ".join(f"system/{t}.{letters}" for t, letters in by_type.items()))


def _lacking_token(mint: Mint, needs: list[tuple[str, str]]) -> str:
    type_, letter = needs[-1]
    scopes = []
    for other in _ALL_TYPES:
        letters = "cruds"
        if other == type_:
            letters = "".join(c for c in letters if c not in _GRANTING[letter])
        if letters:
            scopes.append(f"system/{other}.{letters}")
    for other_type, other_letter in needs[:-1]:  # everything else the case needs stays granted
        scopes.append(f"system/{other_type}.{_GRANTING[other_letter][0]}")
    return mint(" ".join(scopes))


async def _send(secured: Secured, case: Case, token: str) -> int:
    headers = bearer(token, **case.headers)
    response = await secured.http.request(
        case.method, case.url, json=case.json, content=case.content, headers=headers
    )
    return response.status_code


async def _check(secured: Secured, mint: Mint, cases: list[Case]) -> None:
    problems = []
    for case in cases:
        allowed = await _send(secured, case, _needed_token(mint, case.needs))
        if allowed in {401, 403} or allowed >= case.success_below:
            problems.append(f"{case.method} {case.url} with {case.needs}: {allowed}")
        refused = await _send(secured, case, _lacking_token(mint, case.needs))
        if refused != 403:
            problems.append(f"{case.method} {case.url} without {case.needs[-1]}: {refused}")
    assert problems == [], "\n".join(problems)


def _patch_binary(patch: list[dict[str, Any]]) -> dict[str, Any]:
    data = base64.b64encode(orjson.dumps(patch)).decode()
    return {"resourceType": "Binary", "contentType": JSON_PATCH, "data": data}


def _fhir_cases(t: str, keep: str, spare: str, patient: str) -> list[Case]:
    body = resource_of(t, patient)
    patch = [{"op": "test", "path": "/id", "value": keep}]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return [
        Case("GET", f"/fhir/{t}/{keep}", [(t, "read")], f"/fhir/{t}/{{id}}"),
        Case(
            "GET", f"/fhir/{t}/{keep}/_history/1", [(t, "r")], f"/fhir/{t}/{{id}}/_history/{{vid}}"
        ),
        Case("GET", f"/fhir/{t}/{keep}/_history", [(t, "r")], f"/fhir/{t}/{{id}}/_history"),
        Case("GET", f"/fhir/{t}/_history", [(t, "r")], f"/fhir/{t}/_history"),
        Case("GET", f"/fhir/{t}?_id={keep}", [(t, "s")], f"/fhir/{t}"),
        Case(
            "POST",
            f"/fhir/{t}/_search",
            [(t, "s")],
            f"/fhir/{t}/_search",
            content=f"_id={keep}".encode(),
            headers=form,
        ),
        Case("POST", f"/fhir/{t}", [(t, "c")], f"/fhir/{t}", json=body, headers=FHIR),
        Case(
            "PUT",
            f"/fhir/{t}/{keep}",
            [(t, "u")],
            f"/fhir/{t}/{{id}}",
            json=body | {"id": keep},
            headers=FHIR,
        ),
        Case(
            "PUT",
            f"/fhir/{t}?_id={keep}",
            [(t, "u")],
            f"/fhir/{t}",
            json=body | {"id": keep},
            headers=FHIR,
        ),
        Case(
            "PATCH",
            f"/fhir/{t}/{keep}",
            [(t, "u")],
            f"/fhir/{t}/{{id}}",
            json=patch,
            headers={"Content-Type": JSON_PATCH},
        ),
        Case(
            "PATCH",
            f"/fhir/{t}?_id={keep}",
            [(t, "u")],
            f"/fhir/{t}",
            json=patch,
            headers={"Content-Type": JSON_PATCH},
        ),
        Case(
            "POST",
            f"/fhir/{t}/$validate",
            [(t, "read")],
            f"/fhir/{t}/$validate",
            json=body,
            headers=FHIR,
        ),
        Case("DELETE", f"/fhir/{t}/{spare}", [(t, "d")], f"/fhir/{t}/{{id}}"),
        Case("DELETE", f"/fhir/{t}?_id=no-such-{t}", [(t, "d")], f"/fhir/{t}"),
    ]


def _entry_cases(t: str, keep: str, spare: str, patient: str) -> list[Case]:
    body = resource_of(t, patient)
    patch = _patch_binary([{"op": "test", "path": "/id", "value": keep}])
    entries = [
        ({"request": {"method": "GET", "url": f"{t}/{keep}"}}, "read"),
        ({"request": {"method": "GET", "url": f"{t}/{keep}/_history/1"}}, "r"),
        ({"request": {"method": "GET", "url": f"{t}?_id={keep}"}}, "s"),
        ({"resource": body, "request": {"method": "POST", "url": t}}, "c"),
        (
            {"resource": body | {"id": keep}, "request": {"method": "PUT", "url": f"{t}/{keep}"}},
            "u",
        ),
        ({"resource": body, "request": {"method": "PUT", "url": f"{t}?_id={keep}"}}, "u"),
        ({"resource": patch, "request": {"method": "PATCH", "url": f"{t}/{keep}"}}, "u"),
        ({"request": {"method": "DELETE", "url": f"{t}/{spare}"}}, "d"),
        ({"request": {"method": "DELETE", "url": f"{t}?_id=no-such"}}, "d"),
    ]
    return [
        Case(
            "POST",
            "/fhir",
            [(t, letter)],
            "/fhir",
            json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
            headers=FHIR,
        )
        for entry, letter in entries
    ]


def _system_cases(course: str, webhook: str, audit_id: str, patient: str) -> list[Case]:
    c = f"/ipt/v1/courses/{course}"
    t = "/ipt/v1/courses/{course_id}"
    plan_u = [("CarePlan", "u")]
    session = {"minutes": 60, "outcome": "attended", "start": "2026-01-12T09:00:00Z"}
    cases = [
        Case("GET", "/fhir/_history", [("*", "r")], "/fhir/_history"),
        Case(
            "GET",
            f"/fhir/CarePlan/{course}/$ipt-status",
            [("CarePlan", "read")],
            "/fhir/CarePlan/{course_id}/$ipt-status",
        ),
        Case("GET", "/fhir/AuditEvent", [("AuditEvent", "s")], "/fhir/AuditEvent"),
        Case(
            "GET", f"/fhir/AuditEvent/{audit_id}", [("AuditEvent", "read")], "/fhir/AuditEvent/{id}"
        ),
        Case(
            "POST",
            "/ipt/v1/courses",
            [(x, "c") for x in ("Patient", "Condition", "Goal", "CarePlan", "Observation")],
            "/ipt/v1/courses",
            json=enrolment(f"Patient/{patient}"),
        ),
        Case("GET", "/ipt/v1/courses", [("CarePlan", "s")], "/ipt/v1/courses"),
        Case("GET", c, [("CarePlan", "read")], t),
        Case("POST", f"{c}/activate", plan_u, f"{t}/activate"),
        Case(
            "POST",
            f"{c}/sessions",
            [(x, "c") for x in ("Encounter", "Appointment", "Observation", "CarePlan")],
            f"{t}/sessions",
            json=session,
            success_below=500,  # a session recorded twice is a 409: the scope check passed
        ),
        Case(
            "POST", f"{c}/practice", plan_u, f"{t}/practice", json={"description": "Call a friend"}
        ),
        Case(
            "PATCH",
            f"{c}/practice/1",
            plan_u,
            f"{t}/practice/{{number}}",
            json={"status": "completed"},
        ),
        Case("POST", f"{c}/hold", plan_u, f"{t}/hold", success_below=500),
        Case("POST", f"{c}/resume", plan_u, f"{t}/resume", success_below=500),
        Case("POST", f"{c}/complete", plan_u, f"{t}/complete", success_below=500),
        Case(
            "POST",
            f"{c}/maintenance",
            [("Goal", "c"), ("CarePlan", "c")],
            f"{t}/maintenance",
            success_below=500,
        ),
        Case(
            "POST",
            f"{c}/stop",
            plan_u,
            f"{t}/stop",
            json={"reason": "Moved away"},
            success_below=500,
        ),
        Case("GET", f"{c}/status", [("CarePlan", "read")], f"{t}/status"),
        Case("GET", "/ipt/v1/dashboard/summary", [("CarePlan", "s")], "/ipt/v1/dashboard/summary"),
        Case(
            "GET",
            "/ipt/v1/dashboard/worklist?kind=overdue",
            [("CarePlan", "s")],
            "/ipt/v1/dashboard/worklist",
        ),
        Case("GET", "/ipt/v1/events", [("CarePlan", "s")], "/ipt/v1/events"),
        Case(
            "POST",
            "/ipt/v1/webhooks",
            [("Subscription", "c")],
            "/ipt/v1/webhooks",
            json={"url": "https://receiver.example/2"},
        ),
        Case("GET", "/ipt/v1/webhooks", [("Subscription", "s")], "/ipt/v1/webhooks"),
        Case(
            "GET",
            f"/ipt/v1/webhooks/{webhook}",
            [("Subscription", "read")],
            "/ipt/v1/webhooks/{webhook_id}",
        ),
        Case(
            "PATCH",
            f"/ipt/v1/webhooks/{webhook}",
            [("Subscription", "u")],
            "/ipt/v1/webhooks/{webhook_id}",
            json={"enabled": False},
        ),
        Case(
            "GET",
            f"/ipt/v1/webhooks/{webhook}/deliveries",
            [("Subscription", "read")],
            "/ipt/v1/webhooks/{webhook_id}/deliveries",
        ),
        Case(
            "POST",
            f"/ipt/v1/webhooks/{webhook}/deliveries/1/redeliver",
            [("Subscription", "u")],
            "/ipt/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            success_below=500,  # no such delivery: 404, after the scope check
        ),
        Case(
            "DELETE",
            f"/ipt/v1/webhooks/{webhook}",
            [("Subscription", "d")],
            "/ipt/v1/webhooks/{webhook_id}",
        ),
    ]
    async_ = {"Prefer": "respond-async"}
    types = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "Observation"}],
    }
    group = "/fhir/Group/{group_id}/$export"  # no such group: 404 after the scope check
    cases += [
        Case("GET", "/ipt/v1/statuses", [("CarePlan", "s")], "/ipt/v1/statuses"),
        Case(
            "GET",
            f"{c}/status/history",
            [("CarePlan", "read")],
            f"{t}/status/history",
            success_below=500,  # not computed yet: 404 after the scope check
        ),
        Case(
            "GET",
            "/ipt/v1/dashboard/trends?from=2026-01-05T00:00:00Z&to=2026-02-02T00:00:00Z",
            [("CarePlan", "s")],
            "/ipt/v1/dashboard/trends",
        ),
        *(
            Case(
                "GET",
                f"{path.format(group_id='ipt-therapist-none')}?_type=Observation",
                [("Observation", "s")],
                path,
                headers=async_,
                success_below=500 if path == group else 400,
            )
            for path in ("/fhir/$export", "/fhir/Patient/$export", group)
        ),
        *(
            Case(
                "POST",
                path.format(group_id="ipt-therapist-none"),
                [("Observation", "s")],
                path,
                json=types,
                headers=async_,
                success_below=500 if path == group else 400,
            )
            for path in ("/fhir/$export", "/fhir/Patient/$export", group)
        ),
    ]
    ehr = "/ipt/v1/ehr/endpoints"
    cases += [
        Case("GET", ehr, [("Endpoint", "s")], ehr),
        Case(
            "GET",
            f"{ehr}/none/status",
            [("Endpoint", "read")],
            f"{ehr}/{{name}}/status",
            success_below=500,
        ),
        Case(
            "GET",
            f"{ehr}/none/dead-letters",
            [("Endpoint", "read")],
            f"{ehr}/{{name}}/dead-letters",
            success_below=500,
        ),
        Case(
            "POST",
            f"{ehr}/none/dead-letters/1/retry",
            [("Endpoint", "u")],
            f"{ehr}/{{name}}/dead-letters/{{letter_id}}/retry",
            success_below=500,  # no such endpoint: 404, after the scope check
        ),
    ]
    return cases


@pytest.fixture
async def seeded(secured: Secured, mint: Mint) -> dict[str, dict[str, str]]:
    """Resources to use (`keep`) and to delete (`spare`) of every type, and their patient."""
    admin = mint(ADMIN)
    keep, spare = await patient_record(secured, admin), await patient_record(secured, admin)
    keep["Practitioner"] = await create(secured, admin, "Practitioner")
    spare["Practitioner"] = await create(secured, admin, "Practitioner")
    return {"keep": keep, "spare": spare}


@pytest.mark.parametrize("resource_type", sorted(REGISTRY))
async def test_fhir_interactions_need_their_scope(
    secured: Secured, mint: Mint, seeded: dict[str, dict[str, str]], resource_type: str
) -> None:
    keep, spare = seeded["keep"], seeded["spare"]
    cases = _fhir_cases(resource_type, keep[resource_type], spare[resource_type], keep["Patient"])
    await _check(secured, mint, cases)


@pytest.mark.parametrize("resource_type", sorted(REGISTRY))
async def test_transaction_entries_need_their_scope(
    secured: Secured, mint: Mint, seeded: dict[str, dict[str, str]], resource_type: str
) -> None:
    keep, spare = seeded["keep"], seeded["spare"]
    cases = _entry_cases(resource_type, keep[resource_type], spare[resource_type], keep["Patient"])
    await _check(secured, mint, cases)


async def test_system_routes_need_their_scope(
    secured: Secured, mint: Mint, seeded: dict[str, dict[str, str]]
) -> None:
    keep = seeded["keep"]
    admin = mint(ADMIN)
    created = await secured.http.post(
        "/ipt/v1/courses", json=enrolment(f"Patient/{keep['Patient']}"), headers=bearer(admin)
    )
    assert created.status_code == 201, created.text
    course = created.json()["id"]
    hook = await secured.http.post(
        "/ipt/v1/webhooks", json={"url": "https://receiver.example/hook"}, headers=bearer(admin)
    )
    assert hook.status_code == 201, hook.text
    webhook = hook.json()["id"]
    audit_id = (
        await secured.http.get("/fhir/AuditEvent?_count=1", headers=bearer(mint(ADMIN)))
    ).json()["entry"][0]["resource"]["id"]
    await _check(secured, mint, _system_cases(course, webhook, audit_id, keep["Patient"]))
    # The SSE stream never ends with a good token; without one it is refused before it starts.
    refused = await secured.http.get(
        "/ipt/v1/events/stream", headers=bearer(_lacking_token(mint, [("CarePlan", "s")]))
    )
    assert refused.status_code == 403


def test_every_operation_has_a_case_or_is_public() -> None:
    document = create_app(api_settings()).openapi()
    cases = _system_cases("course", "webhook", "audit", "patient")
    for resource_type in REGISTRY:
        cases += _fhir_cases(resource_type, "keep", "spare", "patient")
        cases += _entry_cases(resource_type, "keep", "spare", "patient")
    covered = {(case.method, case.template) for case in cases}
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
        and (method.upper(), path) not in _PUBLIC | _REFUSAL_ONLY | _OWNER_ONLY | covered
    ]
    assert missing == []
