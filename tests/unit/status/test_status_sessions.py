"""Resolving Encounters and Appointments into sessions (docs/fhir-mapping.md), and input checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ipt_core.status import (
    CourseFacts,
    Phq9Fact,
    SessionFact,
    SessionOutcome,
    compute_status,
    resolve_session,
)

BOOKED_FOR = datetime.fromisoformat("2026-01-12T09:00:00Z")
STARTED = datetime.fromisoformat("2026-01-12T09:07:00Z")


@pytest.mark.parametrize(
    ("encounter", "appointment", "expected"),
    [
        pytest.param(("finished", STARTED), None, ("attended", STARTED), id="finished-alone"),
        pytest.param(("cancelled", STARTED), None, ("cancelled", STARTED), id="cancelled-alone"),
        pytest.param(("in-progress", STARTED), None, ("none", STARTED), id="in-progress-alone"),
        pytest.param(("entered-in-error", STARTED), None, None, id="error-alone"),
        pytest.param(("finished", None), None, None, id="finished-without-any-time"),
        pytest.param(None, "fulfilled", ("attended", BOOKED_FOR), id="fulfilled"),
        pytest.param(None, "noshow", ("no-show", BOOKED_FOR), id="noshow"),
        pytest.param(None, "cancelled", ("cancelled", BOOKED_FOR), id="cancelled"),
        pytest.param(None, "booked", ("booked", BOOKED_FOR), id="booked"),
        pytest.param(None, "proposed", ("none", BOOKED_FOR), id="proposed"),
        pytest.param(None, "entered-in-error", None, id="appointment-in-error"),
        pytest.param(
            ("finished", STARTED), "noshow", ("attended", STARTED), id="finished-encounter-decides"
        ),
        pytest.param(
            ("cancelled", None), "booked", ("cancelled", BOOKED_FOR), id="cancelled-encounter"
        ),
        pytest.param(
            ("in-progress", STARTED), "noshow", ("no-show", STARTED), id="appointment-decides"
        ),
        pytest.param(
            ("planned", None), "booked", ("booked", BOOKED_FOR), id="planned-encounter-booked"
        ),
        pytest.param(
            ("entered-in-error", STARTED),
            "fulfilled",
            ("attended", BOOKED_FOR),
            id="encounter-in-error-is-ignored",
        ),
        pytest.param(
            ("finished", STARTED),
            "entered-in-error",
            ("attended", STARTED),
            id="finished-encounter-outlives-an-appointment-in-error",
        ),
        pytest.param(
            ("arrived", STARTED), "entered-in-error", None, id="nothing-decides-but-an-error"
        ),
    ],
)
def test_resolve_session(
    encounter: tuple[str, datetime | None] | None,
    appointment: str | None,
    expected: tuple[SessionOutcome, datetime] | None,
) -> None:
    session = resolve_session(
        "Appointment/a1",
        encounter_status=None if encounter is None else encounter[0],
        encounter_start=None if encounter is None else encounter[1],
        appointment_status=appointment,
        appointment_start=None if appointment is None else BOOKED_FOR,
    )

    if expected is None:
        assert session is None
    else:
        assert session == SessionFact("Appointment/a1", expected[1], expected[0])


def test_attended_sessions_at_the_same_time_count_once_each() -> None:
    same_time = (SessionFact("b", STARTED, "attended"), SessionFact("a", STARTED, "no-show"))
    facts = CourseFacts(status="active", period_start=BOOKED_FOR, sessions=same_time)

    status = compute_status(facts, STARTED)

    # ordered by id: a (no-show) then b (attended), so the latest pair is not two no-shows
    assert (status.sessions_attended, status.sessions_no_show) == (1, 1)
    assert status.attendance_rate == 0.5
    assert status.engagement == "on-track"


def test_a_booking_is_future_only_while_its_start_is_after_now() -> None:
    facts = CourseFacts(
        status="active",
        period_start=BOOKED_FOR - timedelta(weeks=1),
        sessions=(SessionFact("s1", BOOKED_FOR, "booked"),),
    )

    before = compute_status(facts, BOOKED_FOR - timedelta(microseconds=1))
    at_start = compute_status(facts, BOOKED_FOR)

    assert (before.next_session_due, before.next_transition_at) == (BOOKED_FOR, BOOKED_FOR)
    assert at_start.next_session_due == BOOKED_FOR - timedelta(weeks=1)  # period.start
    assert at_start.sessions_no_show == 0


def test_other_offsets_are_converted_to_utc() -> None:
    local = datetime(2026, 1, 12, 10, 7, tzinfo=timezone(timedelta(hours=1)))

    session = SessionFact("s1", local, "attended")

    assert session.time == STARTED
    assert session.time.utcoffset() == timedelta(0)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_status(CourseFacts(status="active"), datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionFact("s1", datetime(2026, 1, 1), "attended"),
        lambda: SessionFact("s1", STARTED, "fulfilled"),  # type: ignore[arg-type]
        lambda: Phq9Fact("p1", STARTED, 28),
        lambda: Phq9Fact("p1", STARTED, -1),
        lambda: Phq9Fact("p1", STARTED, True),
        lambda: Phq9Fact("p1", STARTED, 10, item9=4),
        lambda: CourseFacts(status="entered-in-error"),
        lambda: CourseFacts(status="active", course_type="booster"),  # type: ignore[arg-type]
        lambda: CourseFacts(status="active", period_start=datetime(2026, 1, 1)),
        lambda: CourseFacts(status="active", related=CourseFacts(status="active")),
        lambda: CourseFacts(status="active", planned_count=-1),
    ],
    ids=[
        "naive-session-time",
        "unknown-outcome",
        "phq9-above-27",
        "phq9-negative",
        "phq9-bool",
        "item9-above-3",
        "course-entered-in-error",
        "unknown-course-type",
        "naive-period-start",
        "related-of-the-same-type",
        "negative-planned-count",
    ],
)
def test_invalid_facts_are_rejected(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=r"."):
        build()
