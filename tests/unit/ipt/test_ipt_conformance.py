"""The read-only conformance resources (issue 4, item 5): valid R4 and true to the codes."""

from __future__ import annotations

from typing import Any

import pytest

from ipt_core.ipt import conformance_resource, conformance_resources
from ipt_core.ipt.codes import (
    ACTIVITY_SYSTEM,
    COURSE_TYPE_SYSTEM,
    COURSE_TYPES,
    ENCOUNTER_BASED_ON_EXTENSION,
    PHASE_EXTENSION,
    PHASE_SYSTEM,
    PHASES,
    PROBLEM_AREA_SYSTEM,
    PROBLEM_AREAS,
    SOCIAL_PRACTICE,
)
from tests.unit.ipt.support import FhirCheck


@pytest.mark.parametrize(
    "resource", conformance_resources(), ids=lambda r: f"{r['resourceType']}/{r['id']}"
)
def test_conformance_resource_is_valid_r4(resource: dict[str, Any], valid_r4: FhirCheck) -> None:
    valid_r4(resource)
    assert resource["status"] == "active"
    assert resource["url"].startswith("http://fhir.ipt-care.org/")
    assert resource["url"].endswith(f"/{resource['id']}")


def test_ids_are_stable_and_unique() -> None:
    keys = [(r["resourceType"], r["id"]) for r in conformance_resources()]

    assert keys == [
        ("CodeSystem", "ipt-problem-area"),
        ("CodeSystem", "ipt-course-type"),
        ("CodeSystem", "ipt-phase"),
        ("CodeSystem", "ipt-activity"),
        ("StructureDefinition", "ipt-course"),
        ("StructureDefinition", "ipt-phase"),
        ("SearchParameter", "encounter-careplan"),
        ("SearchParameter", "appointment-careplan"),
    ]


@pytest.mark.parametrize(
    ("url", "codes"),
    [
        (PROBLEM_AREA_SYSTEM, PROBLEM_AREAS),
        (COURSE_TYPE_SYSTEM, COURSE_TYPES),
        (PHASE_SYSTEM, PHASES),
        (ACTIVITY_SYSTEM, (SOCIAL_PRACTICE,)),
    ],
)
def test_code_system_holds_exactly_the_documented_codes(url: str, codes: tuple[str, ...]) -> None:
    code_system = next(r for r in conformance_resources() if r.get("url") == url)

    assert code_system["content"] == "complete"
    assert code_system["count"] == len(codes)
    assert tuple(c["code"] for c in code_system["concept"]) == codes
    assert all(c["display"] and c["definition"] for c in code_system["concept"])


def test_careplan_search_parameter_follows_the_based_on_extension() -> None:
    parameter = conformance_resource("SearchParameter", "encounter-careplan")

    assert parameter is not None
    assert parameter["url"] == "http://fhir.ipt-care.org/SearchParameter/encounter-careplan"
    assert (parameter["code"], parameter["type"], parameter["base"], parameter["target"]) == (
        "careplan",
        "reference",
        ["Encounter"],
        ["CarePlan"],
    )
    assert ENCOUNTER_BASED_ON_EXTENSION in parameter["expression"]


def test_course_profile_constrains_careplan() -> None:
    profile = conformance_resource("StructureDefinition", "ipt-course")

    assert profile is not None
    assert profile["baseDefinition"] == "http://hl7.org/fhir/StructureDefinition/CarePlan"
    assert profile["derivation"] == "constraint"
    elements = {e["id"]: e for e in profile["differential"]["element"]}
    assert elements["CarePlan.category:problemArea"]["max"] == "2"
    count = elements["CarePlan.activity:sessions.detail.scheduledTiming[x].repeat.count"]
    assert (count["minValuePositiveInt"], count["maxValuePositiveInt"]) == (6, 30)
    assert all(e["path"].startswith("CarePlan") for e in elements.values())


def test_phase_extension_definition_names_its_url() -> None:
    extension = conformance_resource("StructureDefinition", "ipt-phase")

    assert extension is not None
    assert extension["url"] == PHASE_EXTENSION
    assert extension["context"] == [{"type": "element", "expression": "CarePlan"}]


def test_unknown_conformance_resource_is_none() -> None:
    assert conformance_resource("CodeSystem", "nope") is None


def test_callers_get_their_own_copies() -> None:
    conformance_resources()[0]["status"] = "retired"
    assert conformance_resources()[0]["status"] == "active"
