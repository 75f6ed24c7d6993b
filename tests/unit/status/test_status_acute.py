"""Worked examples of acute courses (docs/status-rules.md), each computed by hand from the rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ipt_core.status import (
    CarePlanStatus,
    CourseFacts,
    Phq9Fact,
    SessionFact,
    SessionOutcome,
    cadence_from_timing,
    compute_status,
)

MONDAY = datetime.fromisoformat("2026-01-05T09:00:00Z")
_LETTERS: dict[str, SessionOutcome] = {
    "a": "attended",
    "n": "no-show",
    "c": "cancelled",
    "b": "booked",
    "-": "none",
}


def at(text: str) -> datetime:
    """An ISO 8601 UTC instant; a date alone means 00:00 UTC (docs/fhir-mapping.md#times)."""
    return datetime.fromisoformat(text if "T" in text else f"{text}T00:00Z")


def weekly(outcomes: str, start: datetime = MONDAY) -> tuple[SessionFact, ...]:
    """One session a week from `start`; a attended, n no-show, c cancelled, b booked, - none."""
    return tuple(
        SessionFact(f"s{week:02}", start + timedelta(weeks=week), _LETTERS[letter])
        for week, letter in enumerate(outcomes)
    )


def booked(*times: str) -> tuple[SessionFact, ...]:
    return tuple(SessionFact(f"b{i}", at(t), "booked") for i, t in enumerate(times))


def acute(
    status: CarePlanStatus = "active",
    sessions: tuple[SessionFact, ...] = (),
    phq9: tuple[Phq9Fact, ...] = (),
    **changes: Any,
) -> CourseFacts:
    return CourseFacts(status=status, period_start=MONDAY, sessions=sessions, phq9=phq9, **changes)


def phq(*scores: tuple[str, int]) -> tuple[Phq9Fact, ...]:
    return tuple(Phq9Fact(f"p{i}", at(t), value) for i, (t, value) in enumerate(scores))


def picked(facts: CourseFacts, now: datetime, names: dict[str, object]) -> dict[str, object]:
    status = compute_status(facts, now)
    return {name: getattr(status, name) for name in names}


def test_worked_example_of_the_status_rules() -> None:
    facts = acute(
        planned_count=20,
        sessions=weekly("aaaaaaaan"),
        phq9=phq(("2026-01-05", 18), ("2026-02-02", 12), ("2026-02-23", 9)),
    )

    status = compute_status(facts, at("2026-03-04T12:00Z"))

    assert status.course_type == "acute"
    assert status.planned_sessions == 20
    assert status.sessions_attended == 8
    assert status.sessions_no_show == 1
    assert status.sessions_cancelled == 0
    assert status.attendance_rate == pytest.approx(8 / 9)
    assert status.sessions_remaining == 12
    assert status.next_session_number == 9
    assert status.phase == "middle"
    assert status.last_attended_at == at("2026-02-23T09:00Z")
    assert status.next_session_due == at("2026-03-02T09:00Z")
    assert status.engagement == "on-track"
    assert (status.phq9_baseline, status.phq9_latest, status.phq9_change) == (18, 9, -9)
    assert status.severity == "mild"
    assert status.response is True
    assert status.remission is False
    assert status.goal_status == "improving"
    assert status.safety_flag is False
    assert status.practice_assigned == status.practice_completed == 0
    assert status.maintenance_recommended is False
    assert status.maintenance_next_due is None
    assert status.maintenance_due is False
    assert status.maintenance_overdue is False
    assert status.next_transition_at == at("2026-03-05T09:00:00.000001Z")


@pytest.mark.parametrize(
    ("planned", "attended", "phase", "remaining"),
    [
        (8, 0, "initial", 8),
        (8, 2, "initial", 6),
        (8, 3, "middle", 5),
        (8, 4, "middle", 4),
        (8, 5, "termination", 3),
        (8, 7, "termination", 1),
        (8, 8, "acute-complete", 0),
        (8, 9, "acute-complete", 0),
        (16, 2, "initial", 14),
        (16, 3, "middle", 13),
        (16, 12, "middle", 4),
        (16, 13, "termination", 3),
        (16, 15, "termination", 1),
        (16, 16, "acute-complete", 0),
        (20, 3, "middle", 17),
        (20, 16, "middle", 4),
        (20, 17, "termination", 3),
        (20, 19, "termination", 1),
        (20, 20, "acute-complete", 0),
        (30, 2, "initial", 28),
        (30, 3, "middle", 27),
        (30, 26, "middle", 4),
        (30, 27, "termination", 3),
        (30, 29, "termination", 1),
        (30, 30, "acute-complete", 0),
        (None, 17, "termination", 3),  # no count on the CarePlan: an acute course plans 20
        (None, 20, "acute-complete", 0),
    ],
)
def test_acute_phase_boundaries(
    planned: int | None, attended: int, phase: str, remaining: int
) -> None:
    facts = acute(planned_count=planned, sessions=weekly("a" * attended))

    status = compute_status(facts, MONDAY + timedelta(weeks=40))

    assert status.phase == phase
    assert status.planned_sessions == (planned or 20)
    assert status.sessions_remaining == remaining
    assert status.next_session_number == (None if phase == "acute-complete" else attended + 1)


JAN_5_18 = ("2026-01-05", 18)
NOT_SCHEDULED = {"next_session_number": None, "next_session_due": None, "engagement": None}


def eight_of_eight(latest_phq9: int, **changes: Any) -> CourseFacts:
    """An 8-session course with all 8 attended; PHQ-9 18 at the start, `latest_phq9` at the 8th."""
    scores = phq(JAN_5_18, ("2026-02-23", latest_phq9))
    return acute(sessions=weekly("a" * 8), planned_count=8, phq9=scores, **changes)


ACUTE_EXAMPLES = [
    pytest.param(
        acute("draft", weekly("a")),
        "2026-01-06T00:00Z",
        {"phase": "intake", "sessions_attended": 1, **NOT_SCHEDULED, "next_transition_at": None},
        id="draft-is-intake",
    ),
    pytest.param(
        acute("on-hold", weekly("aaaa")),
        "2026-02-10T00:00Z",
        {"phase": "on-hold", **NOT_SCHEDULED, "maintenance_recommended": False},
        id="on-hold",
    ),
    pytest.param(
        acute("revoked", weekly("aaaa"), phq(("2026-01-05", 18), ("2026-01-26", 15))),
        "2026-02-10T00:00Z",
        {"phase": "stopped", **NOT_SCHEDULED, "maintenance_recommended": False},
        id="revoked-is-stopped",
    ),
    pytest.param(
        acute("completed", weekly("aaaa"), phq(("2026-01-05", 18), ("2026-01-26", 12))),
        "2026-02-10T00:00Z",
        {"phase": "completed", **NOT_SCHEDULED, "maintenance_recommended": True},
        id="completed-without-remission-recommends-maintenance",
    ),
    pytest.param(
        acute("unknown", weekly("aaa")),
        "2026-01-20T12:00Z",
        {
            "phase": "middle",
            "next_session_number": 4,
            "last_attended_at": at("2026-01-19T09:00Z"),
            "next_session_due": at("2026-01-26T09:00Z"),
            "engagement": "on-track",
            "next_transition_at": at("2026-01-29T09:00:00.000001Z"),
        },
        id="unknown-is-treated-as-active",
    ),
    pytest.param(
        acute(sessions=weekly("aann") + booked("2026-02-03T10:00Z")),
        "2026-01-27T12:00Z",
        {
            "sessions_attended": 2,
            "sessions_no_show": 2,
            "attendance_rate": 0.5,
            "phase": "initial",
            "next_session_number": 3,
            "last_attended_at": at("2026-01-12T09:00Z"),
            "next_session_due": at("2026-02-03T10:00Z"),
            "engagement": "at-risk",  # two no-shows in a row, although the booking is ahead
            "next_transition_at": at("2026-02-03T10:00Z"),  # the booking becomes past
        },
        id="two-no-shows-are-at-risk",
    ),
    pytest.param(
        acute(sessions=weekly("aancn") + booked("2026-02-04T09:00Z")),
        "2026-02-02T12:00Z",
        {"sessions_no_show": 2, "sessions_cancelled": 1, "engagement": "at-risk"},
        id="a-cancellation-does-not-break-the-no-show-streak",
    ),
    pytest.param(
        acute(sessions=weekly("nna")),
        "2026-01-20T00:00Z",
        {
            "attendance_rate": 1 / 3,
            "next_session_due": at("2026-01-26T09:00Z"),
            "engagement": "on-track",
            "next_transition_at": at("2026-01-29T09:00:00.000001Z"),
        },
        id="an-attended-session-ends-the-streak",
    ),
    pytest.param(
        acute(sessions=weekly("aca")),
        "2026-01-20T00:00Z",
        {
            "sessions_attended": 2,
            "sessions_cancelled": 1,
            "sessions_no_show": 0,
            "attendance_rate": 1.0,
            "phase": "initial",
            "next_session_due": at("2026-01-26T09:00Z"),
        },
        id="cancellations-count-apart-from-attendance",
    ),
    pytest.param(
        acute(sessions=weekly("aaa") + booked("2026-02-03T15:00Z", "2026-01-27T15:00Z")),
        "2026-01-26T10:00Z",
        {
            "next_session_due": at("2026-01-27T15:00Z"),
            "engagement": "on-track",
            "next_transition_at": at("2026-01-27T15:00Z"),
        },
        id="earliest-future-booking-is-due",
    ),
    pytest.param(
        acute(sessions=weekly("aab")),
        "2026-01-20T12:00Z",
        {
            "sessions_attended": 2,
            "sessions_no_show": 0,
            "sessions_cancelled": 0,
            "next_session_due": at("2026-01-19T09:00Z"),
            "engagement": "on-track",
            "next_transition_at": at("2026-01-22T09:00:00.000001Z"),
        },
        id="a-past-booking-never-updated-is-nothing",
    ),
    pytest.param(
        acute(sessions=weekly("aa")),
        "2026-01-22T09:00Z",
        {"engagement": "on-track", "next_transition_at": at("2026-01-22T09:00:00.000001Z")},
        id="not-overdue-at-due-plus-grace",
    ),
    pytest.param(
        acute(sessions=weekly("aa")),
        "2026-01-22T09:00:00.000001Z",
        {"engagement": "overdue", "next_transition_at": at("2026-01-26T09:00:00.000001Z")},
        id="overdue-just-after-due-plus-grace",
    ),
    pytest.param(
        acute(sessions=weekly("aa")),
        "2026-01-26T09:00:00.000001Z",
        {"engagement": "at-risk", "next_transition_at": at("2026-02-11T09:00:00.000001Z")},
        id="at-risk-just-after-due-plus-7-days",
    ),
    pytest.param(
        acute(sessions=weekly("aa")),
        "2026-02-11T09:00:00.000001Z",
        {"engagement": "lapsed", "next_transition_at": None},
        id="lapsed-just-after-due-plus-23-days",
    ),
    pytest.param(
        acute(),
        "2026-01-04T00:00Z",
        {
            "phase": "initial",
            "next_session_number": 1,
            "last_attended_at": None,
            "attendance_rate": None,
            "next_session_due": MONDAY,
            "engagement": "on-track",
            "next_transition_at": at("2026-01-08T09:00:00.000001Z"),
        },
        id="nothing-attended-is-due-at-course-start",
    ),
    pytest.param(
        acute(
            sessions=weekly("aaaa"),
            phq9=phq(("2026-01-05T09:00Z", 18), ("2026-01-19T10:00Z", 14)),
        ),
        "2026-01-15T00:00Z",
        {
            "sessions_attended": 2,
            "last_attended_at": at("2026-01-12T09:00Z"),
            "next_session_due": at("2026-01-19T09:00Z"),
            "phq9_baseline": 18,
            "phq9_latest": 18,
            "phq9_change": 0,
            "goal_status": "in-progress",
            "next_transition_at": at("2026-01-19T09:00Z"),  # the next session starts to count
        },
        id="as-of-ignores-later-sessions-and-phq9",
    ),
    pytest.param(
        acute(sessions=(*weekly("a"), SessionFact("c1", at("2026-01-20T09:00Z"), "cancelled"))),
        "2026-01-10T00:00Z",
        {"sessions_cancelled": 0, "next_transition_at": at("2026-01-15T09:00:00.000001Z")},
        id="as-of-ignores-a-later-cancellation",
    ),
    pytest.param(
        acute(sessions=weekly("a"), cadence=cadence_from_timing(2, "wk")),
        "2026-01-06T00:00Z",
        {"next_session_due": at("2026-01-19T09:00Z")},
        id="cadence-period-2-wk-is-14-days",
    ),
    pytest.param(
        acute(sessions=weekly("a"), cadence=cadence_from_timing(1, "wk", 2)),
        "2026-01-06T00:00Z",
        {"next_session_due": at("2026-01-08T21:00Z")},
        id="cadence-frequency-2-per-week-is-3.5-days",
    ),
    pytest.param(
        acute(
            sessions=(SessionFact("s1", at("2026-01-31T09:00Z"), "attended"),),
            cadence=cadence_from_timing(1, "mo"),
        ),
        "2026-02-01T00:00Z",
        {"next_session_due": at("2026-02-28T09:00Z")},
        id="cadence-mo-is-a-calendar-month",
    ),
    pytest.param(
        acute(
            practice_statuses=(
                "not-started",
                "in-progress",
                "completed",
                "completed",
                "cancelled",
                "entered-in-error",
            )
        ),
        "2026-01-06T00:00Z",
        {"practice_assigned": 4, "practice_completed": 2},
        id="practice-assignments",
    ),
    pytest.param(
        eight_of_eight(9),
        "2026-02-24T00:00Z",
        {"phase": "acute-complete", **NOT_SCHEDULED, "maintenance_recommended": True},
        id="acute-complete-without-remission-recommends-maintenance",
    ),
    pytest.param(
        eight_of_eight(4),
        "2026-02-24T00:00Z",
        {"remission": True, "maintenance_recommended": False},
        id="remission-needs-no-maintenance",
    ),
    pytest.param(
        eight_of_eight(4, addresses_recurrent_depression=True),
        "2026-02-24T00:00Z",
        {"remission": True, "maintenance_recommended": True},
        id="recurrent-F33-with-remission-recommends-maintenance",
    ),
    pytest.param(
        eight_of_eight(9, has_maintenance_course=True),
        "2026-02-24T00:00Z",
        {"maintenance_recommended": False, "maintenance_next_due": None},
        id="an-existing-maintenance-course-is-not-recommended-again",
    ),
    pytest.param(
        acute(sessions=weekly("a" * 5), planned_count=8, phq9=phq(JAN_5_18, ("2026-02-02", 16))),
        "2026-02-03T00:00Z",
        {"phase": "termination", "maintenance_recommended": False},
        id="no-recommendation-before-the-acute-course-ends",
    ),
]


@pytest.mark.parametrize(("facts", "now", "expected"), ACUTE_EXAMPLES)
def test_acute_examples(facts: CourseFacts, now: str, expected: dict[str, object]) -> None:
    assert picked(facts, at(now), expected) == expected
