"""IPT rules on FHIR writes (issue 4, item 2): which writes are refused, and where."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ipt_core.ipt import (
    Course,
    Phq9,
    RuleViolation,
    Session,
    careplan_violations,
    course_to_careplan,
    observation_violations,
    phq9_to_observation,
    related_course_id,
    rule_violations,
    session_to_appointment,
    session_to_encounter,
)
from ipt_core.ipt.codes import PROBLEM_AREA_SYSTEM
from tests.unit.ipt.support import START

COUNT = "CarePlan.activity[0].detail.scheduledTiming.repeat.count"


def careplan(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "patient": "Patient/p1",
        "problem_areas": ["grief"],
        "start": START,
        "id": "cp-acute",
        "status": "active",
    }
    return course_to_careplan(Course.model_validate(fields | changes))


def maintenance(**changes: Any) -> dict[str, Any]:
    return careplan(id="cp-m", course_type="maintenance", based_on="cp-acute", **changes)


def phq9(**value: Any) -> dict[str, Any]:
    total = Phq9(patient="Patient/p1", total=9, item9=0, effective=START)
    observation = phq9_to_observation(total)
    del observation["valueInteger"]
    return observation | value


def rules(violations: list[RuleViolation]) -> list[tuple[str, str]]:
    return [(v.rule, v.expression) for v in violations]


def test_a_well_formed_course_passes() -> None:
    assert careplan_violations(careplan()) == []
    assert careplan_violations(maintenance(), careplan()) == []


def test_a_careplan_that_is_no_ipt_course_passes_as_ordinary_fhir() -> None:
    plain = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "category": []}
    assert rule_violations(plain) == []


def test_unknown_problem_area_is_refused_at_its_coding() -> None:
    resource = careplan()
    resource["category"].append({"coding": [{"system": PROBLEM_AREA_SYSTEM, "code": "loneliness"}]})

    violations = careplan_violations(resource)

    assert rules(violations) == [("ipt-problem-area", "CarePlan.category[4].coding[0].code")]
    assert "loneliness" in violations[0].message


def test_a_course_without_a_problem_area_is_refused() -> None:
    resource = careplan()
    resource["category"] = resource["category"][:3]
    assert rules(careplan_violations(resource)) == [("ipt-problem-area", "CarePlan.category")]


def test_three_problem_areas_are_too_many() -> None:
    resource = careplan(problem_areas=["grief", "role-dispute"])
    resource["category"].append(
        {"coding": [{"system": PROBLEM_AREA_SYSTEM, "code": "role-transition"}]}
    )
    assert rules(careplan_violations(resource)) == [("ipt-problem-area", "CarePlan.category")]


@pytest.mark.parametrize("count", [5, 31, 0, 20.5, "20", True])
def test_planned_sessions_outside_6_to_30_are_refused(count: Any) -> None:
    resource = careplan()
    resource["activity"][0]["detail"]["scheduledTiming"]["repeat"]["count"] = count
    assert rules(careplan_violations(resource)) == [("ipt-planned-sessions", COUNT)]


@pytest.mark.parametrize("count", [6, 30])
def test_planned_sessions_at_the_bounds_pass(count: int) -> None:
    assert careplan_violations(careplan(planned_sessions=count)) == []


@pytest.mark.parametrize(
    "subject",
    [{"reference": "Group/g1"}, {"display": "Jane"}, None],
)
def test_subject_must_be_a_patient(subject: Any) -> None:
    resource = careplan()
    resource["subject"] = subject
    assert rules(careplan_violations(resource)) == [("ipt-subject-patient", "CarePlan.subject")]


def test_transaction_placeholder_typed_patient_is_a_patient() -> None:
    resource = careplan()
    resource["subject"] = {
        "reference": "urn:uuid:1f6b7a2c-0000-4000-8000-000000000001",
        "type": "Patient",
    }
    assert careplan_violations(resource) == []


def test_a_course_without_a_start_is_refused() -> None:
    resource = careplan()
    del resource["period"]
    assert rules(careplan_violations(resource)) == [("ipt-course-start", "CarePlan.period.start")]


def test_maintenance_without_an_acute_course_is_refused() -> None:
    resource = maintenance()
    del resource["basedOn"]

    assert related_course_id(resource) is None
    assert rules(careplan_violations(resource)) == [
        ("ipt-maintenance-based-on", "CarePlan.basedOn")
    ]


def test_maintenance_of_a_missing_course_is_refused() -> None:
    resource = maintenance()

    assert related_course_id(resource) == "cp-acute"
    assert rules(rule_violations(resource, None)) == [
        ("ipt-maintenance-based-on", "CarePlan.basedOn")
    ]


def test_maintenance_of_another_patients_course_is_refused() -> None:
    violations = careplan_violations(maintenance(), careplan(patient="Patient/p2"))

    assert rules(violations) == [("ipt-maintenance-based-on", "CarePlan.basedOn")]
    assert "another patient" in violations[0].message


@pytest.mark.parametrize(
    "acute",
    [
        maintenance(),
        {"resourceType": "CarePlan", "id": "cp-acute", "subject": {"reference": "Patient/p1"}},
        careplan(status="entered-in-error"),
    ],
)
def test_maintenance_must_continue_an_acute_ipt_course(acute: dict[str, Any]) -> None:
    assert rules(careplan_violations(maintenance(), acute)) == [
        ("ipt-maintenance-based-on", "CarePlan.basedOn")
    ]


def test_a_course_cannot_be_both_acute_and_maintenance() -> None:
    resource = careplan()
    resource["category"][2]["coding"].append(
        {"system": "http://fhir.ipt-care.org/CodeSystem/ipt-course-type", "code": "maintenance"}
    )
    assert ("ipt-course-type", "CarePlan.category") in rules(
        careplan_violations(resource, careplan())
    )


@pytest.mark.parametrize(
    ("value", "expression"),
    [
        ({"valueInteger": 28}, "Observation.valueInteger"),
        ({"valueInteger": -1}, "Observation.valueInteger"),
        ({"valueInteger": "12"}, "Observation.valueInteger"),
        ({"valueInteger": True}, "Observation.valueInteger"),
        ({"valueInteger": 3.5}, "Observation.valueInteger"),
        ({"valueQuantity": {"value": 3.5}}, "Observation.valueQuantity.value"),
        ({"valueQuantity": {"value": 28}}, "Observation.valueQuantity.value"),
        ({"valueString": "12"}, "Observation.valueString"),
        ({}, "Observation.value"),
    ],
)
def test_phq9_total_must_be_a_whole_number_0_to_27(value: dict[str, Any], expression: str) -> None:
    assert rules(observation_violations(phq9(**value))) == [("ipt-phq9-value", expression)]


@pytest.mark.parametrize(
    "value", [{"valueInteger": 0}, {"valueInteger": 27}, {"valueQuantity": {"value": 12.0}}]
)
def test_phq9_total_in_range_passes(value: dict[str, Any]) -> None:
    assert observation_violations(phq9(**value)) == []


def test_a_cancelled_phq9_without_a_value_passes() -> None:
    assert observation_violations(phq9(status="cancelled")) == []


@pytest.mark.parametrize("item9", [4, -1, 1.5, "2"])
def test_item9_must_be_a_whole_number_0_to_3(item9: Any) -> None:
    observation = phq9(valueInteger=9)
    observation["component"][0]["valueInteger"] = item9

    assert rules(observation_violations(observation)) == [
        ("ipt-phq9-item9", "Observation.component[0].valueInteger")
    ]


def loinc_score(code: str, value: int) -> dict[str, Any]:
    """A final Observation of LOINC `code` with an integer value (and nothing else)."""
    coding = {"system": "http://loinc.org", "code": code}
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [coding]},
        "valueInteger": value,
    }


def test_a_separate_item9_observation_is_checked_too() -> None:
    item9 = loinc_score("44260-8", 5)
    assert rules(rule_violations(item9)) == [("ipt-phq9-item9", "Observation.valueInteger")]


def test_other_observations_pass() -> None:
    gad7 = loinc_score("70274-6", 40)  # GAD-7 total
    assert rule_violations(gad7) == []


def session(**changes: Any) -> Session:
    fields = {
        "patient": "Patient/p1",
        "start": START,
        "outcome": "attended",
        "course_id": "cp-acute",
    }
    return Session.model_validate(fields | changes)


@pytest.mark.parametrize("to_fhir", [session_to_encounter, session_to_appointment])
def test_a_session_linked_to_its_patients_course_passes(to_fhir: Any) -> None:
    resource = to_fhir(session())

    assert related_course_id(resource) == "cp-acute"
    assert rule_violations(resource, careplan()) == []


@pytest.mark.parametrize("to_fhir", [session_to_encounter, session_to_appointment])
def test_a_session_for_another_patients_course_is_refused(to_fhir: Any) -> None:
    resource = to_fhir(session(patient="Patient/p2"))
    kind = resource["resourceType"]

    assert rules(rule_violations(resource, careplan())) == [
        ("ipt-session-course", f"{kind}.extension")
    ]


def test_a_session_linked_to_a_missing_or_non_ipt_course_is_refused() -> None:
    encounter = session_to_encounter(session())
    plain = {"resourceType": "CarePlan", "subject": {"reference": "Patient/p1"}}

    assert rules(rule_violations(encounter, None)) == [
        ("ipt-session-course", "Encounter.extension")
    ]
    assert rules(rule_violations(encounter, plain)) == [
        ("ipt-session-course", "Encounter.extension")
    ]


def test_an_unlinked_session_passes() -> None:
    encounter = session_to_encounter(session(course_id=None))
    assert related_course_id(encounter) is None
    assert rule_violations(encounter) == []


def test_rules_do_not_change_the_resource() -> None:
    resource = maintenance()
    before = copy.deepcopy(resource)
    rule_violations(resource, careplan(patient="Patient/p2"))
    assert resource == before
