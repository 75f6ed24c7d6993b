"""Maintenance courses and acute courses followed by one (docs/status-rules.md), computed by hand.

The acute course below ran four weekly sessions, the last on Sat 2026-01-31 09:00Z, so a monthly
maintenance course with nothing attended yet is due on 2026-02-28 09:00Z (Jan 31 + 1 calendar
month, clamped): `maintenance_due` from 2026-02-21 09:00Z through 2026-03-07 09:00Z.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from ipt_core.status import CarePlanStatus, CourseFacts, Phq9Fact, SessionFact, compute_status


def at(text: str) -> datetime:
    """An ISO 8601 UTC instant."""
    return datetime.fromisoformat(text)


def sessions(outcome: Any, *times: str) -> tuple[SessionFact, ...]:
    return tuple(SessionFact(f"{outcome}-{t}", at(t), outcome) for t in times)


def scores(*values: tuple[str, int]) -> tuple[Phq9Fact, ...]:
    return tuple(Phq9Fact(f"phq-{t}", at(t), value) for t, value in values)


PATIENT_PHQ9 = scores(("2026-01-10T09:00Z", 16), ("2026-01-31T09:30Z", 8))
ACUTE = CourseFacts(
    status="completed",
    period_start=at("2026-01-10T09:00Z"),
    period_end=at("2026-01-31T10:00Z"),
    planned_count=4,
    sessions=sessions("attended", *(f"2026-01-{day}T09:00Z" for day in (10, 17, 24, 31))),
    phq9=PATIENT_PHQ9,
)


def maintenance(status: CarePlanStatus = "active", **changes: Any) -> CourseFacts:
    facts = {
        "status": status,
        "course_type": "maintenance",
        "period_start": at("2026-02-01T00:00Z"),
        "phq9": PATIENT_PHQ9,
        "related": ACUTE,
    } | changes
    return CourseFacts(**facts)


def acute_followed_by(maintenance_course: CourseFacts) -> CourseFacts:
    return replace(ACUTE, related=maintenance_course, has_maintenance_course=True)


NOT_DUE = {"maintenance_next_due": None, "maintenance_due": False, "maintenance_overdue": False}

EXAMPLES = [
    pytest.param(
        maintenance(),
        "2026-02-10T00:00Z",
        {
            "course_type": "maintenance",
            "phase": "maintenance",
            "planned_sessions": None,
            "sessions_remaining": None,
            "sessions_attended": 0,
            "next_session_number": 1,
            "last_attended_at": at("2026-01-31T09:00Z"),  # from its acute course
            "next_session_due": at("2026-02-28T09:00Z"),
            "engagement": "on-track",
            "maintenance_next_due": at("2026-02-28T09:00Z"),
            "maintenance_due": False,
            "maintenance_overdue": False,
            # the acute baseline, then its own window (from 2026-01-18) holding the 8
            "phq9_baseline": 16,
            "phq9_latest": 8,
            "phq9_change": -8,
            "response": True,
            "remission": False,
            "goal_status": "improving",
            "maintenance_recommended": False,
            "next_transition_at": at("2026-02-21T09:00Z"),
        },
        id="next-due-jan-31-plus-a-month-is-feb-28",
    ),
    pytest.param(
        maintenance(),
        "2026-02-21T08:59:59.999999Z",
        {"maintenance_due": False, "next_transition_at": at("2026-02-21T09:00Z")},
        id="window-not-yet-open",
    ),
    pytest.param(
        maintenance(),
        "2026-02-21T09:00Z",
        {"maintenance_due": True, "next_transition_at": at("2026-03-07T09:00:00.000001Z")},
        id="window-opens-7-days-before",
    ),
    pytest.param(
        maintenance(),
        "2026-03-07T09:00Z",
        {
            "maintenance_due": True,
            "maintenance_overdue": False,
            "engagement": "on-track",
            "next_transition_at": at("2026-03-07T09:00:00.000001Z"),
        },
        id="window-closes-7-days-after-inclusive",
    ),
    pytest.param(
        maintenance(),
        "2026-03-07T09:00:00.000001Z",
        {
            "maintenance_due": False,
            "maintenance_overdue": True,
            "engagement": "overdue",
            "next_transition_at": at("2026-03-14T09:00:00.000001Z"),
        },
        id="overdue-after-the-window",
    ),
    pytest.param(
        maintenance(),
        "2026-03-14T09:00:00.000001Z",
        {"engagement": "at-risk", "next_transition_at": at("2026-03-30T09:00:00.000001Z")},
        id="at-risk-after-14-days",
    ),
    pytest.param(
        maintenance(),
        "2026-03-30T09:00:00.000001Z",
        {"engagement": "lapsed", "maintenance_overdue": True, "next_transition_at": None},
        id="lapsed-after-30-days",
    ),
    pytest.param(
        maintenance(sessions=sessions("attended", "2026-02-28T09:00Z", "2026-03-31T09:00Z")),
        "2026-04-01T00:00Z",
        {
            "sessions_attended": 2,
            "next_session_number": 3,
            "attendance_rate": 1.0,
            "last_attended_at": at("2026-03-31T09:00Z"),
            "next_session_due": at("2026-04-30T09:00Z"),
            "maintenance_due": False,
            "next_transition_at": at("2026-04-23T09:00Z"),
        },
        id="mar-31-plus-a-month-is-apr-30",
    ),
    pytest.param(
        maintenance(
            related=None,
            period_start=at("2028-01-01T00:00Z"),
            sessions=sessions("attended", "2028-01-31T09:00Z"),
        ),
        "2028-02-01T00:00Z",
        {"next_session_due": at("2028-02-29T09:00Z"), "maintenance_due": False},
        id="leap-year-jan-31-plus-a-month-is-feb-29",
    ),
    pytest.param(
        maintenance(sessions=sessions("booked", "2026-03-02T14:00Z")),
        "2026-02-20T00:00Z",
        {
            "next_session_due": at("2026-03-02T14:00Z"),
            "maintenance_next_due": at("2026-03-02T14:00Z"),
            "maintenance_due": False,
            "next_transition_at": at("2026-02-23T14:00Z"),
        },
        id="a-future-booking-is-due",
    ),
    pytest.param(
        maintenance(
            related=replace(
                ACUTE,
                sessions=sessions("attended", "2026-01-10T09:00Z")
                + sessions("no-show", "2026-01-17T09:00Z", "2026-01-24T09:00Z"),
            )
        ),
        "2026-02-10T00:00Z",
        {"next_session_due": at("2026-02-10T09:00Z"), "engagement": "on-track"},
        id="no-show-streak-uses-own-sessions-only",
    ),
    pytest.param(
        maintenance("on-hold"),
        "2026-02-21T09:00Z",
        {"phase": "on-hold", "next_session_due": None, "next_session_number": None, **NOT_DUE},
        id="on-hold",
    ),
    pytest.param(
        maintenance("completed"),
        "2026-02-21T09:00Z",
        {"phase": "completed", "maintenance_recommended": False, **NOT_DUE},
        id="completed",
    ),
    pytest.param(
        maintenance("draft"),
        "2026-02-21T09:00Z",
        {"phase": "intake", "next_session_number": None, **NOT_DUE},
        id="draft-is-intake",
    ),
    pytest.param(
        maintenance(planned_count=24, sessions=sessions("attended", "2026-02-28T09:00Z")),
        "2026-03-01T00:00Z",
        {"planned_sessions": 24, "sessions_remaining": 23, "phase": "maintenance"},
        id="with-a-planned-count",
    ),
    pytest.param(
        acute_followed_by(maintenance()),
        "2026-02-10T00:00Z",
        {
            "phase": "maintenance",
            "sessions_attended": 4,
            "next_session_number": None,
            "next_session_due": None,
            "engagement": None,
            "maintenance_next_due": at("2026-02-28T09:00Z"),
            "maintenance_due": False,
            "maintenance_recommended": False,
            "next_transition_at": at("2026-02-21T09:00Z"),
        },
        id="completed-acute-shows-its-active-maintenance-course",
    ),
    pytest.param(
        acute_followed_by(maintenance()),
        "2026-03-07T09:00:00.000001Z",
        {"maintenance_due": False, "maintenance_overdue": True, "engagement": None},
        id="completed-acute-mirrors-maintenance-overdue",
    ),
    pytest.param(
        acute_followed_by(maintenance(sessions=sessions("booked", "2026-03-02T14:00Z"))),
        "2026-02-24T00:00Z",
        {"maintenance_next_due": at("2026-03-02T14:00Z"), "maintenance_due": True},
        id="completed-acute-mirrors-the-maintenance-booking",
    ),
    pytest.param(
        acute_followed_by(maintenance("on-hold")),
        "2026-02-21T09:00Z",
        {"phase": "completed", "maintenance_recommended": False, **NOT_DUE},
        id="an-on-hold-maintenance-course-is-not-active",
    ),
    pytest.param(
        replace(ACUTE, has_maintenance_course=True),
        "2026-02-21T09:00Z",
        {"phase": "completed", "maintenance_recommended": False, **NOT_DUE},
        id="any-maintenance-course-stops-the-recommendation",
    ),
    pytest.param(
        ACUTE,
        "2026-02-21T09:00Z",
        {"phase": "completed", "maintenance_recommended": True, **NOT_DUE},
        id="acute-without-remission-and-maintenance-recommends-it",
    ),
    pytest.param(
        maintenance(
            related=replace(ACUTE, phq9=()),
            phq9=scores(("2026-02-10T09:00Z", 14), ("2026-03-10T09:00Z", 9)),
        ),
        "2026-04-01T00:00Z",
        {"phq9_baseline": 14, "phq9_latest": 9, "response": False, "goal_status": "improving"},
        id="no-acute-phq9-own-earliest-is-baseline",
    ),
    pytest.param(
        maintenance(phq9=PATIENT_PHQ9 + scores(("2026-03-05T09:00Z", 6), ("2026-04-02T09:00Z", 3))),
        "2026-04-10T00:00Z",
        {
            "phq9_baseline": 16,
            "phq9_latest": 3,
            "phq9_change": -13,
            "severity": "minimal",
            "remission": True,
            "goal_status": "achieved",
        },
        id="remission-measured-from-the-acute-baseline",
    ),
    pytest.param(
        maintenance(period_start=at("2026-03-01T00:00Z")),
        "2026-03-10T00:00Z",
        {
            "phq9_baseline": 16,
            "phq9_latest": None,
            "phq9_change": None,
            "severity": None,
            "response": False,
            "goal_status": "in-progress",
            "safety_flag": False,
        },
        id="nothing-in-own-window-has-no-latest",
    ),
    pytest.param(
        maintenance(
            period_start=at("2026-01-20T00:00Z"),
            phq9=PATIENT_PHQ9[:1],
            related=replace(ACUTE, phq9=PATIENT_PHQ9[:1]),
        ),
        "2026-02-10T00:00Z",
        {"phq9_baseline": 16, "phq9_latest": 16, "phq9_change": 0, "goal_status": "in-progress"},
        id="the-acute-baseline-is-not-counted-twice",
    ),
]


@pytest.mark.parametrize(("facts", "now", "expected"), EXAMPLES)
def test_maintenance_examples(facts: CourseFacts, now: str, expected: dict[str, object]) -> None:
    status = compute_status(facts, at(now))

    assert {name: getattr(status, name) for name in expected} == expected


def test_acute_mirrors_its_maintenance_course_next_session_due() -> None:
    course = maintenance(sessions=sessions("attended", "2026-02-27T09:00Z"))
    now = at("2026-03-01T00:00Z")

    shown = compute_status(acute_followed_by(course), now)

    assert shown.maintenance_next_due == compute_status(course, now).next_session_due
    assert shown.maintenance_next_due == at("2026-03-27T09:00Z")


def test_acute_shown_as_maintenance_keeps_its_own_phq9() -> None:
    status = compute_status(acute_followed_by(maintenance()), at("2026-02-10T00:00Z"))

    assert (status.phq9_baseline, status.phq9_latest, status.response) == (16, 8, True)
