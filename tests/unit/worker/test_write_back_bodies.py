"""The status engine's write-back bodies are valid FHIR, model included.

They are written `derived_from_stored` (without the fhir.resources model validation,
docs/architecture.md "Status engine"), so this is what shows that skipping it loses nothing:
every phase and every Goal achievement the engine can write, set into stored versions, passes
the full `check_resource`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pytest

from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.validation import check_resource
from ipt_core.ipt import Course, course_to_careplan, symptom_goal
from ipt_core.ipt.codes import PHASES, GoalAchievement
from ipt_worker.write_backs import derived_writes

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
ACHIEVEMENTS = get_args(GoalAchievement)


def _stored(resource: dict[str, Any]) -> StoredResource:
    body = resource | {"meta": {"versionId": "3", "lastUpdated": "2026-03-01T00:00:00Z"}}
    check_resource(body)  # as when it was written
    return StoredResource(
        resource["resourceType"], resource["id"], 3, NOW, False, orjson.dumps(body).decode()
    )


def _course(**changes: Any) -> Course:
    fields: dict[str, Any] = {
        "id": "c1",
        "patient": "Patient/p1",
        "problem_areas": ("grief",),
        "start": datetime(2026, 1, 5, 9, tzinfo=UTC),
        "status": "active",
        "symptom_goal_id": "g1",
    }
    return Course(**(fields | changes))


@pytest.mark.parametrize("stored_phase", [None, *PHASES])
@pytest.mark.parametrize("phase", PHASES)
def test_every_careplan_write_back_is_valid(stored_phase: str | None, phase: str) -> None:
    careplan = _stored(course_to_careplan(_course(phase=stored_phase)))
    goal = _stored(symptom_goal(_course()))
    writes = derived_writes(careplan, goal, {"phase": phase, "goal_status": "in-progress"})
    assert [w.resource_type for w in writes] == ([] if phase == stored_phase else ["CarePlan"])
    for write in writes:
        assert write.derived_from_stored
        assert write.if_match == 3
        check_resource(write.body)


@pytest.mark.parametrize("stored", ACHIEVEMENTS)
@pytest.mark.parametrize("achievement", ACHIEVEMENTS)
def test_every_goal_write_back_is_valid(stored: str, achievement: str) -> None:
    careplan = _stored(course_to_careplan(_course(phase="initial")))
    goal = _stored(symptom_goal(_course(), stored))  # type: ignore[arg-type]
    writes = derived_writes(careplan, goal, {"phase": "initial", "goal_status": achievement})
    assert [w.resource_type for w in writes] == ([] if achievement == stored else ["Goal"])
    for write in writes:
        assert write.derived_from_stored
        check_resource(write.body)
