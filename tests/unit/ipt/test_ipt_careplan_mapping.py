"""Course <-> CarePlan + Goals (docs/fhir-mapping.md): round trip, shape, readers, narrative."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ipt_core.ipt import (
    Course,
    InterpersonalGoal,
    PracticeAssignment,
    TreatmentOutline,
    course_from_fhir,
    course_goals,
    course_phase,
    course_to_careplan,
    course_type,
    is_ipt_course,
    is_symptom_goal,
    outcome_references,
    planned_end,
    planned_sessions,
    problem_areas,
    symptom_goal,
    with_course_phase,
    with_goal_achievement,
)
from ipt_core.ipt.codes import COURSE_TYPE_SYSTEM, IPT_THERAPY, PHASES, PROBLEM_AREAS, SNOMED
from tests.unit.ipt.support import START, FhirCheck, fhir_ids, instants

texts = (
    st.text(
        # The model refuses what XML cannot carry: surrogates, controls, U+FFFE and U+FFFF.
        st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
        | st.sampled_from("<>&\"'\n\t"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
problem_area_lists = st.lists(st.sampled_from(PROBLEM_AREAS), min_size=1, max_size=2, unique=True)
achievements = st.sampled_from(["in-progress", "improving", "achieved", "no-change", "worsening"])


def references(*types: str) -> st.SearchStrategy[str]:
    return st.builds(lambda kind, ident: f"{kind}/{ident}", st.sampled_from(types), fhir_ids)


@st.composite
def courses(draw: st.DrawFn) -> Course:
    maintenance = draw(st.booleans())
    start = draw(instants)
    goal_ids = draw(st.lists(fhir_ids, min_size=4, max_size=4, unique=True))
    goals = draw(st.lists(st.builds(InterpersonalGoal, text=texts), max_size=3))
    return Course(
        id=draw(fhir_ids),
        status=draw(st.sampled_from(["draft", "active", "on-hold", "completed", "revoked"])),
        patient=draw(references("Patient")),
        therapist=draw(st.none() | references("Practitioner", "PractitionerRole")),
        conditions=draw(st.lists(references("Condition"), max_size=3, unique=True)),
        problem_areas=draw(problem_area_lists),
        course_type="maintenance" if maintenance else "acute",
        planned_sessions=draw(st.integers(6, 30) | (st.none() if maintenance else st.nothing())),
        session_minutes=draw(st.integers(1, 180)),
        cadence=draw(st.sampled_from(["weekly", "monthly"])),
        start=start,
        end=draw(st.none() | st.timedeltas(timedelta(0), timedelta(days=900)).map(start.__add__)),
        interpersonal_goals=[
            goal.model_copy(update={"id": goal_id})
            for goal, goal_id in zip(goals, goal_ids[1:], strict=False)
        ],
        based_on=draw(fhir_ids) if maintenance else None,
        identifier=draw(st.none() | texts),
        practice_assignments=draw(st.lists(st.builds(PracticeAssignment, description=texts))),
        symptom_goal_id=draw(st.none() | st.just(goal_ids[0])),
        session_references=draw(
            st.lists(references("Encounter", "Appointment"), max_size=4, unique=True)
        ),
        phase=draw(st.none() | st.sampled_from(PHASES)),
    )


def outline(**changes: Any) -> TreatmentOutline:
    fields: dict[str, Any] = {
        "patient": "Patient/pat-1",
        "therapist": "Practitioner/ther-1",
        "conditions": ["Condition/mdd"],
        "problem_areas": ["role-dispute"],
        "start": START,
        "interpersonal_goals": [{"text": "Talk with my sister weekly", "problem_area": "grief"}],
        "identifier": "course-0001",
    }
    return TreatmentOutline.model_validate(fields | changes)


def enrolled(**changes: Any) -> Course:
    return Course.from_outline(
        outline(**changes), course_id="cp-1", symptom_goal_id="g-1", interpersonal_goal_ids=["g-2"]
    )


def wire(resource: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(resource)))


@given(courses())
def test_course_round_trips_through_careplan_and_goals(course: Course) -> None:
    goals = [wire(goal) for goal in course_goals(course)]
    random.Random(0).shuffle(goals)  # the CarePlan's order decides, not the caller's

    assert course_from_fhir(wire(course_to_careplan(course)), goals) == course


@settings(deadline=None)  # the validators load their models on first use
@given(course=courses())
def test_every_course_resource_is_valid_r4(course: Course, valid_r4: FhirCheck) -> None:
    for resource in [course_to_careplan(course), *course_goals(course)]:
        valid_r4(resource)


def test_enrolled_course_maps_to_the_documented_careplan() -> None:
    careplan = course_to_careplan(enrolled())

    assert careplan["status"] == "draft"
    assert careplan["intent"] == "plan"
    assert [c["coding"][0]["code"] for c in careplan["category"]] == [
        "assess-plan",
        IPT_THERAPY,
        "acute",
        "role-dispute",
    ]
    assert careplan["identifier"] == [
        {"system": "http://fhir.ipt-care.org/identifier/course", "value": "course-0001"}
    ]
    assert careplan["subject"] == {"reference": "Patient/pat-1"}
    assert careplan["author"] == {"reference": "Practitioner/ther-1"}
    assert careplan["addresses"] == [{"reference": "Condition/mdd"}]
    assert careplan["goal"] == [{"reference": "Goal/g-1"}, {"reference": "Goal/g-2"}]
    assert careplan["period"] == {"start": "2026-01-05T09:00:00Z"}
    sessions = careplan["activity"][0]["detail"]
    assert sessions["code"]["coding"][0] == {
        "system": SNOMED,
        "code": IPT_THERAPY,
        "display": "Interpersonal psychotherapy",
    }
    assert sessions["scheduledTiming"]["repeat"] == {
        "count": 20,
        "frequency": 1,
        "period": 1,
        "periodUnit": "wk",
        "duration": 60,
        "durationUnit": "min",
    }


def test_maintenance_course_is_based_on_its_acute_course_and_monthly() -> None:
    course = enrolled(course_type="maintenance", based_on="cp-acute", planned_sessions=24)
    careplan = course_to_careplan(course)

    assert careplan["basedOn"] == [{"reference": "CarePlan/cp-acute"}]
    assert careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["periodUnit"] == "mo"
    assert course_type(careplan) == "maintenance"


def test_maintenance_without_count_has_no_planned_sessions() -> None:
    course = enrolled(course_type="maintenance", based_on="cp-acute", planned_sessions=None)
    careplan = course_to_careplan(course)

    assert "count" not in careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    assert planned_sessions(careplan) is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"problem_areas": []}, "at least 1"),
        ({"problem_areas": ["grief", "role-dispute", "role-transition"]}, "at most 2"),
        ({"problem_areas": ["grief", "grief"]}, "must not repeat"),
        ({"problem_areas": ["loneliness"]}, "Input should be"),
        ({"planned_sessions": 5}, "greater than or equal to 6"),
        ({"planned_sessions": 31}, "less than or equal to 30"),
        ({"planned_sessions": None}, "plans a number of sessions"),
        ({"course_type": "maintenance"}, "based on an acute course"),
        ({"based_on": "cp-0"}, "based on an acute course"),
        ({"start": datetime(2026, 1, 5)}, "timezone"),
        ({"patient": "Practitioner/1"}, "pattern"),
    ],
)
def test_outline_rejects_what_ipt_does_not_allow(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        outline(**changes)


def test_outline_defaults_follow_the_ipt_model() -> None:
    acute = outline()
    maintenance = outline(course_type="maintenance", based_on="cp-0")

    assert (acute.planned_sessions, acute.session_minutes, acute.cadence) == (20, 60, "weekly")
    assert maintenance.cadence == "monthly"


def test_course_start_is_kept_in_utc() -> None:
    paris = datetime(2026, 1, 5, 10, tzinfo=timezone(timedelta(hours=1)))

    start = outline(start=paris).start

    assert (start, start.tzinfo) == (datetime(2026, 1, 5, 9, tzinfo=UTC), UTC)


def test_narrative_escapes_goal_text() -> None:
    goal = {"text": "<script>alert('x')</script> & call Mum", "problem_area": "grief"}
    course = enrolled(interpersonal_goals=[goal])

    div = course_to_careplan(course)["text"]["div"]

    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert "<script>" not in div
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; call Mum" in div


def test_readers_take_a_careplan_an_ehr_wrote() -> None:
    careplan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [
            {"coding": [{"system": SNOMED, "code": IPT_THERAPY}]},
            {
                "coding": [
                    {"system": "http://fhir.ipt-care.org/CodeSystem/ipt-problem-area", "code": c}
                    for c in ("grief", "bogus", "grief")
                ]
            },
        ],
        "subject": {"reference": "https://ehr.example/fhir/Patient/p9/_history/2"},
        "period": {"start": "2026-01-05"},
        "activity": [{"outcomeReference": [{"reference": "Encounter/e1"}, {"reference": "x"}]}],
    }

    assert is_ipt_course(careplan)
    assert course_type(careplan) == "acute"
    assert planned_sessions(careplan) == 20
    assert problem_areas(careplan) == ("grief",)
    assert outcome_references(careplan) == ("Encounter/e1",)
    course = course_from_fhir(careplan | {"id": "ehr-1"})
    assert course.patient == "Patient/p9"
    assert course.start == datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "category",
    [
        [],
        [{"coding": [{"system": SNOMED, "code": "75516001"}]}],
        [{"text": "Interpersonal psychotherapy"}],
        "not a list",
    ],
)
def test_a_careplan_without_the_ipt_code_is_no_ipt_course(category: Any) -> None:
    assert not is_ipt_course({"resourceType": "CarePlan", "category": category})


def test_course_type_coding_says_maintenance() -> None:
    category = [{"coding": [{"system": COURSE_TYPE_SYSTEM, "code": "maintenance"}]}]
    assert course_type({"category": category}) == "maintenance"


def test_phase_extension_is_replaced_not_repeated() -> None:
    careplan = course_to_careplan(enrolled())
    other = {"url": "http://example.org/other", "valueString": "kept"}

    twice = with_course_phase(
        with_course_phase(careplan | {"extension": [other]}, "initial"), "middle"
    )

    assert course_phase(twice) == "middle"
    assert len(twice["extension"]) == 2
    assert other in twice["extension"]
    assert course_phase(careplan) is None


def test_symptom_goal_targets_phq9_remission_by_the_planned_end() -> None:
    goal = symptom_goal(enrolled())

    assert goal["lifecycleStatus"] == "active"
    assert goal["achievementStatus"]["coding"][0]["code"] == "in-progress"
    target = goal["target"][0]
    assert target["measure"]["coding"][0]["code"] == "44261-6"
    assert target["detailQuantity"] == {
        "value": 5,
        "comparator": "<",
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    assert target["dueDate"] == "2026-05-25"  # 20 weeks after Mon 2026-01-05
    assert is_symptom_goal(goal)


@settings(deadline=None)
@given(achievement=achievements)
def test_goal_achievement_write_back_stays_valid(achievement: Any, valid_r4: FhirCheck) -> None:
    goal = with_goal_achievement(symptom_goal(enrolled()), achievement)

    valid_r4(goal)
    assert goal["achievementStatus"]["coding"][0]["code"] == achievement


def test_monthly_planned_end_clamps_to_the_month() -> None:
    course = outline(
        course_type="maintenance",
        based_on="cp-0",
        planned_sessions=13,
        start=datetime(2026, 1, 31, 9, tzinfo=UTC),
    )
    assert planned_end(course) == datetime(2027, 2, 28, 9, tzinfo=UTC)


def test_interpersonal_goal_is_categorised_by_problem_area() -> None:
    goals = course_goals(enrolled())

    assert goals[1]["category"][0]["coding"][0]["code"] == "grief"
    assert goals[1]["description"] == {"text": "Talk with my sister weekly"}
    assert not is_symptom_goal(goals[1])
