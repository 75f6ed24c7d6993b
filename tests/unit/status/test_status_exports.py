"""The public API of `ipt_core.status` is exactly its `__all__`; its codes are those of the docs.

The phases are the `ipt-phase` CodeSystem of docs/ipt-model.md#codes.
"""

from __future__ import annotations

import inspect
from typing import get_args

import ipt_core.status
from ipt_core.ipt import codes
from ipt_core.status import CourseStatus, Phase
from tests.support.exports import public_members


def test_all_lists_every_public_member() -> None:
    # Submodules (e.g. the loader) appear as attributes once imported; they are not re-exports.
    assert public_members(ipt_core.status) == set(ipt_core.status.__all__)


def test_every_class_and_function_of_all_is_defined_in_the_package() -> None:
    members = [getattr(ipt_core.status, name) for name in ipt_core.status.__all__]
    defined = [m for m in members if inspect.isclass(m) or inspect.isfunction(m)]

    assert len(defined) >= 10
    assert all(m.__module__.startswith("ipt_core.status._") for m in defined)


def test_phases_are_the_ipt_phase_code_system() -> None:
    assert get_args(Phase) == codes.PHASES


def test_status_fields_are_named_as_documented() -> None:
    assert list(CourseStatus.__dataclass_fields__) == [
        "course_type",
        "planned_sessions",
        "sessions_attended",
        "sessions_no_show",
        "sessions_cancelled",
        "sessions_remaining",
        "attendance_rate",
        "phase",
        "next_session_number",
        "last_attended_at",
        "next_session_due",
        "engagement",
        "phq9_baseline",
        "phq9_latest",
        "phq9_change",
        "severity",
        "response",
        "remission",
        "safety_flag",
        "goal_status",
        "practice_assigned",
        "practice_completed",
        "maintenance_recommended",
        "maintenance_next_due",
        "maintenance_due",
        "maintenance_overdue",
        "next_transition_at",
    ]
