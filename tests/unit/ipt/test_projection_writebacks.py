"""The status engine's write-backs are recognised, so they never queue a recompute."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from ipt_core.ipt import (
    Course,
    course_to_careplan,
    symptom_goal,
    with_course_phase,
    with_goal_achievement,
)
from ipt_core.ipt.projections import is_status_writeback

COURSE = Course(
    id="c1",
    patient="Patient/p1",
    problem_areas=("grief",),
    start=datetime(2026, 1, 5, 9, tzinfo=UTC),
    symptom_goal_id="g1",
)


def stored(resource: dict[str, Any], version: int) -> dict[str, Any]:
    return resource | {"meta": {"versionId": str(version), "lastUpdated": f"2026-01-0{version}"}}


def test_a_new_phase_is_a_write_back() -> None:
    careplan = stored(course_to_careplan(COURSE), 1)
    assert is_status_writeback(careplan, stored(with_course_phase(careplan, "initial"), 2))
    phased = with_course_phase(careplan, "initial")
    assert is_status_writeback(phased, stored(with_course_phase(phased, "middle"), 3))


def test_a_goal_achievement_is_a_write_back() -> None:
    goal = stored(symptom_goal(COURSE), 1)
    assert is_status_writeback(goal, stored(with_goal_achievement(goal, "improving"), 2))


def test_any_other_change_is_not() -> None:
    careplan = course_to_careplan(COURSE)
    changed = copy.deepcopy(with_course_phase(careplan, "initial"))
    changed["status"] = "on-hold"
    assert not is_status_writeback(careplan, changed)
    other = careplan | {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    assert not is_status_writeback(careplan, other)
    goal = symptom_goal(COURSE)
    assert not is_status_writeback(goal, goal | {"lifecycleStatus": "cancelled"})


def test_a_creation_or_another_type_is_not() -> None:
    careplan = course_to_careplan(COURSE)
    assert not is_status_writeback(None, careplan)
    patient = {"resourceType": "Patient", "id": "p1"}
    assert not is_status_writeback(patient, patient)
