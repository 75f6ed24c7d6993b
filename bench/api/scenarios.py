"""The interactions `make bench` measures, each as a wrk Lua script.

Scripts are the same for every server that supports the interaction; only the ids differ
where a server assigns its own (domain courses exist on this service only).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.api.wrk import lua_list
from bench.dataset import course_resources
from ipt_core.ipt import codes

__all__ = ["SCENARIOS", "Fixture", "Scenario", "transaction_bundle"]

OURS, PEER, LIMIT = "ours", "peer", "limit"


@dataclass(frozen=True)
class Fixture:
    """What the seeded servers hold: Patient ids (every server) and IPT course ids (ours)."""

    patients: list[str]
    courses: list[str]


@dataclass(frozen=True)
class Scenario:
    """One interaction: its Lua script, who supports it, and what one request is worth."""

    name: str
    label: str
    script: Callable[[Fixture], str]
    targets: tuple[str, ...]
    resources_per_request: int = 0  # > 0: report resources/s instead of requests/s
    reads: bool = False  # counts for the read latency target
    # Heavy requests get fewer connections and longer runs: wrk counts only requests that
    # finish within the run, so latency (connections / rate) must stay well below its length.
    connections: tuple[int, ...] | None = None  # None: the levels given on the command line
    seconds_factor: float = 1.0
    fresh_ids: bool = False  # each run gets Patients no earlier run has written
    # At least this many rounds, the median reported: for a scenario whose rate moves between
    # rounds by more than its target's margin (creates: ±15% a 10 s round, bench/PROFILE.md).
    rounds: int = 1


def _random_get(path: str) -> Callable[[Fixture], str]:
    """GET `path` with `{id}` replaced by a random seeded Patient id."""
    before, _, after = path.partition("{id}")

    def script(fixture: Fixture) -> str:
        return (
            f"ids = {lua_list(fixture.patients)}\n"
            "request = function()\n"
            f"  return wrk.format('GET', {json.dumps(before)} .. ids[math.random(#ids)]"
            f" .. {json.dumps(after)})\n"
            "end\n"
        )

    return script


def _post(path: str, body: dict[str, Any], content_type: str) -> str:
    return (
        "wrk.method = 'POST'\n"
        f"wrk.path = {json.dumps(path)}\n"
        f"wrk.body = {json.dumps(json.dumps(body, separators=(',', ':')))}\n"
        f"wrk.headers['Content-Type'] = {json.dumps(content_type)}\n"
    )


def _create(_: Fixture) -> str:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:bench:created", "value": "1"}],
        "name": [{"family": "Created", "given": ["Bench"]}],
        "gender": "female",
        "birthDate": "1990-02-03",
    }
    return _post("/fhir/Patient", patient, "application/fhir+json")


def _update(fixture: Fixture) -> str:
    # Round robin over every Patient: an id comes back long after its last answer, so the
    # version learnt from that answer (the body's id and meta.versionId) is current.
    return (
        f"ids = {lua_list(fixture.patients)}\n"
        "versions = {}\n"
        "next_index = 0\n"
        "request = function()\n"
        "  next_index = next_index % #ids + 1\n"
        "  local id = ids[next_index]\n"
        "  local version = versions[id] or '1'\n"
        '  local body = \'{"resourceType":"Patient","id":"\' .. id .. \'",\'\n'
        '    .. \'"name":[{"family":"Updated","given":["Bench"]}],\'\n'
        '    .. \'"gender":"female","birthDate":"1980-05-17"}\'\n'
        "  return wrk.format('PUT', '/fhir/Patient/' .. id, {\n"
        "    ['Content-Type'] = 'application/fhir+json',\n"
        "    ['Prefer'] = 'return=representation',\n"
        "    ['If-Match'] = 'W/\"' .. version .. '\"'}, body)\n"
        "end\n"
        "response = function(status, headers, body)\n"
        "  if status == 200 then\n"
        '    local id = body:match(\'"id"%s*:%s*"([^"]+)"\')\n'
        '    local version = body:match(\'"versionId"%s*:%s*"([^"]+)"\')\n'
        "    if id and version then versions[id] = version end\n"
        "  end\n"
        "end\n"
    )


def transaction_bundle(first_course: int, courses: int) -> dict[str, Any]:
    """A transaction creating `courses` generated courses (20 entries each) with urn:uuids.

    Each course is a Patient, a CarePlan, 13 session Encounters and 5 PHQ-9s; references
    between them are urn:uuid fullUrls, so the same Bundle can be posted again and again.
    """
    entries = []
    for course in range(first_course, first_course + courses):
        resources = list(course_resources(course, sessions=13, phq9=5))
        urns = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in resources}
        for resource in resources:
            text = json.dumps({k: v for k, v in resource.items() if k != "id"})
            for reference, urn in urns.items():
                text = text.replace(f'"{reference}"', f'"{urn}"')
            entries.append(
                {
                    "fullUrl": urns[f"{resource['resourceType']}/{resource['id']}"],
                    "resource": json.loads(text),
                    "request": {"method": "POST", "url": resource["resourceType"]},
                }
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _transaction(courses: int) -> Callable[[Fixture], str]:
    def script(_: Fixture) -> str:
        bundle = transaction_bundle(1_000_000, courses)
        return _post("/fhir", bundle, "application/fhir+json")

    return script


def _session(fixture: Fixture) -> str:
    return (
        f"ids = {lua_list(fixture.courses)}\n"
        "next_index = 0\n"
        "request = function()\n"
        "  next_index = next_index % #ids + 1\n"
        # February to December: the courses start on 2025-01-06 (`run._enrol`), and a session
        # before its course's start is refused (422), which would count as a failed request.
        "  local day = string.format('2025-%02d-%02dT09:00:00Z', math.random(2, 12),"
        " math.random(28))\n"
        '  local body = \'{"start":"\' .. day .. \'","minutes":50,"outcome":"attended",\'\n'
        '    .. \'"mode":"in-person","phq9":{"total":\' .. math.random(0, 27) .. \',"item9":0}}\'\n'
        "  return wrk.format('POST', '/ipt/v1/courses/' .. ids[next_index] .. '/sessions',\n"
        "    {['Content-Type'] = 'application/json'}, body)\n"
        "end\n"
    )


def _status(fixture: Fixture) -> str:
    return (
        f"ids = {lua_list(fixture.courses)}\n"
        "request = function()\n"
        "  return wrk.format('GET', '/ipt/v1/courses/' .. ids[math.random(#ids)] .. '/status')\n"
        "end\n"
    )


_PHQ9 = f"{codes.LOINC}%7C{codes.PHQ9_TOTAL}"
_FHIR = (OURS, PEER)

# Reads first, then writes: the writes change what the reads would find.
SCENARIOS = (
    Scenario("read", "read by id", _random_get("/fhir/Patient/{id}"), (*_FHIR, LIMIT), reads=True),
    Scenario("vread", "vread", _random_get("/fhir/Patient/{id}/_history/1"), _FHIR, reads=True),
    Scenario(
        "search",
        "search `Encounter?subject=…&_count=20`",
        _random_get("/fhir/Encounter?subject=Patient/{id}&_count=20"),
        _FHIR,
    ),
    Scenario(
        "phq9",
        "PHQ-9 search `Observation?patient=…&code=…`",
        _random_get(f"/fhir/Observation?patient=Patient/{{id}}&code={_PHQ9}"),
        _FHIR,
    ),
    Scenario("status", "course status `GET /ipt/v1/courses/{id}/status`", _status, (OURS,)),
    Scenario("create", "create Patient", _create, _FHIR, rounds=3),
    Scenario("update", "update Patient with If-Match", _update, _FHIR, fresh_ids=True),
    Scenario(
        "transaction",
        "transaction, 20 entries",
        _transaction(1),
        _FHIR,
        connections=(4,),
        seconds_factor=2,
    ),
    Scenario("session", "record a session `POST /ipt/v1/courses/{id}/sessions`", _session, (OURS,)),
    Scenario(
        "bulk",
        "bulk load by 100-entry transactions",
        _transaction(5),
        _FHIR,
        resources_per_request=100,
        connections=(4,),
        seconds_factor=2,
    ),
)
