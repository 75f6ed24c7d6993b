"""Projection rows read from one resource: course, session and measure rows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ipt_core.ipt.projections as projections
from ipt_core.ipt import (
    Course,
    Phq9,
    Session,
    course_to_careplan,
    phq9_to_observation,
    session_to_appointment,
    session_to_encounter,
)
from ipt_core.ipt.projections import course_row, measure_row, session_facts
from tests.support.exports import public_members
from tests.unit.ipt.support import START

LOINC = "http://loinc.org"


def test_all_lists_every_public_member() -> None:
    assert public_members(projections) == set(projections.__all__)
    assert projections.__all__ == sorted(projections.__all__)


def test_a_course_row_holds_what_the_status_engine_reads() -> None:
    course = Course(
        id="c1",
        patient="Patient/p1",
        therapist="Practitioner/t1",
        problem_areas=("grief", "role-dispute"),
        planned_sessions=16,
        session_minutes=50,
        start=START,
        end=datetime(2026, 5, 1, tzinfo=UTC),
        status="completed",
    )
    row = course_row(course_to_careplan(course), recurrent=True, symptom_goal_id="g1")
    assert row is not None
    assert {k: v for k, v in row.items() if k != "timing"} == {
        "id": "c1",
        "patient_id": "p1",
        "therapist_ref": "Practitioner/t1",
        "organization_ref": None,
        "status": "completed",
        "course_type": "acute",
        "problem_areas": ["grief", "role-dispute"],
        "planned_sessions": 16,
        "session_minutes": 50,
        "period_start": START,
        "period_end": datetime(2026, 5, 1, tzinfo=UTC),
        "based_on": None,
        "recurrent": True,
        "symptom_goal_id": "g1",
    }
    assert row["timing"]["count"] == 16
    assert row["timing"]["periodUnit"] == "wk"


def test_a_course_without_a_patient_has_no_row() -> None:
    careplan = course_to_careplan(
        Course(id="c1", patient="Patient/p1", problem_areas=("grief",), start=START)
    )
    careplan["subject"] = {"reference": "Group/g1"}
    assert course_row(careplan, recurrent=False, symptom_goal_id=None) is None


def session(**changes: Any) -> Session:
    fields = {"patient": "Patient/p1", "start": START, "outcome": "attended", "course_id": "c1"}
    return Session.model_validate(fields | changes)


def test_an_encounter_session() -> None:
    encounter = session_to_encounter(session(minutes=50, appointment_id="a1")) | {"id": "e1"}
    facts = session_facts(encounter)
    assert facts is not None
    assert facts.row("c1", "extension") == {
        "resource_type": "Encounter",
        "resource_id": "e1",
        "patient_id": "p1",
        "course_id": "c1",
        "link_reason": "extension",
        "status": "finished",
        "start": START,
        "minutes": 50,
        "appointment_id": "a1",
        "is_ipt": True,
    }
    assert facts.explicit_course_id == "c1"


def test_an_appointment_session() -> None:
    appointment = session_to_appointment(session(outcome="no-show", course_id=None)) | {"id": "a1"}
    facts = session_facts(appointment)
    assert facts is not None
    assert (facts.patient_id, facts.status, facts.minutes, facts.is_ipt) == (
        "p1",
        "noshow",
        60,
        True,
    )
    assert facts.explicit_course_id is None


def test_cpt_psychotherapy_codes_name_ipt_but_generic_psychotherapy_does_not() -> None:
    encounter = session_to_encounter(session()) | {"id": "e1"}
    encounter["type"] = [
        {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "90834"}]}
    ]
    assert session_facts(encounter).is_ipt  # type: ignore[union-attr]
    encounter["type"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "75516001"}]}]
    assert not session_facts(encounter).is_ipt  # type: ignore[union-attr]


def test_no_session_in_error_or_without_a_patient() -> None:
    encounter = session_to_encounter(session()) | {"id": "e1"}
    assert session_facts(encounter | {"status": "entered-in-error"}) is None
    assert session_facts(encounter | {"subject": {"reference": "Group/g"}}) is None
    assert session_facts({"resourceType": "Patient", "id": "p1"}) is None


def test_a_phq9_total_with_its_item9() -> None:
    phq9 = Phq9(patient="Patient/p1", total=12, item9=1, effective=START, id="o1")
    assert measure_row(phq9_to_observation(phq9)) == {
        "observation_id": "o1",
        "patient_id": "p1",
        "code": "44261-6",
        "status": "final",
        "effective": START,
        "value": 12,
        "item9": 1,
        "members": None,
    }


def test_a_separate_item9_and_a_total_listing_it() -> None:
    item9 = {
        "resourceType": "Observation",
        "id": "o9",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "44260-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-05T09:00:00Z",
        "valueInteger": 2,
    }
    row = measure_row(item9)
    assert row is not None
    assert (row["code"], row["value"], row["item9"]) == ("44260-8", 2, None)
    total = phq9_to_observation(Phq9(patient="Patient/p1", total=9, effective=START, id="o1"))
    total["hasMember"] = [{"reference": "Observation/o9"}]
    assert measure_row(total)["members"] == ["o9"]  # type: ignore[index]


def test_no_measure_without_a_score_time_or_patient() -> None:
    observation = phq9_to_observation(Phq9(patient="Patient/p1", total=9, effective=START, id="o1"))
    assert measure_row(observation | {"status": "entered-in-error"}) is None
    assert measure_row({k: v for k, v in observation.items() if k != "valueInteger"}) is None
    assert measure_row({k: v for k, v in observation.items() if k != "effectiveDateTime"}) is None
    assert measure_row(observation | {"subject": {"reference": "Group/g"}}) is None
    gad7 = observation | {"code": {"coding": [{"system": LOINC, "code": "70274-6"}]}}
    assert measure_row(gad7) is None
