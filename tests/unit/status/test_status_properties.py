"""Properties of the course status function (docs/status-rules.md), checked with hypothesis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from ipt_core.status import (
    Cadence,
    CarePlanStatus,
    CourseFacts,
    CourseStatus,
    CourseType,
    Phq9Fact,
    SessionFact,
    SessionOutcome,
    compute_status,
)

BASE = datetime(2026, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
FAR = timedelta(days=3650)
# Active courses are where the time rules live, so they are drawn most often.
STATUSES: list[CarePlanStatus] = ["active", "active", "active", "unknown", "completed"]
STATUSES += ["draft", "on-hold", "revoked"]
COURSE_TYPES: list[CourseType] = ["acute", "maintenance"]
CADENCES = [Cadence.of_days(7), Cadence.of_days(14), Cadence.of_months(1), Cadence.of_days(3)]

# The exactness of next_transition_at is the property most worth many examples; no deadline,
# as a loaded CI machine must not turn a slow example into a failure.
exhaustive = settings(max_examples=300, deadline=None)

# Hours on a grid make ties and coincident thresholds likely; ±1 µs probes the strict edges.
instants = st.builds(
    lambda hours, jitter: BASE + timedelta(hours=hours, microseconds=jitter),
    st.integers(-24 * 30, 24 * 200),
    st.sampled_from([0, 0, 0, 1, -1]),
)
ids = st.text(alphabet="abc", min_size=1, max_size=2)
sessions = st.builds(
    SessionFact, id=ids, time=instants, outcome=st.sampled_from(get_args(SessionOutcome))
)
phq9_values = st.builds(
    Phq9Fact,
    id=ids,
    time=instants,
    value=st.integers(0, 27),
    item9=st.none() | st.integers(0, 3),
)


@st.composite
def courses(draw: st.DrawFn, course_type: CourseType | None = None) -> CourseFacts:
    kind = draw(st.sampled_from(COURSE_TYPES)) if course_type is None else course_type
    related = None
    if course_type is None and draw(st.booleans()):
        related = draw(courses("maintenance" if kind == "acute" else "acute"))
    return CourseFacts(
        status=draw(st.sampled_from(STATUSES)),
        course_type=kind,
        period_start=draw(st.none() | instants),
        period_end=draw(st.none() | instants),
        planned_count=draw(st.none() | st.integers(1, 30)),
        cadence=draw(st.none() | st.sampled_from(CADENCES)),
        addresses_recurrent_depression=draw(st.booleans()),
        sessions=tuple(draw(st.lists(sessions, max_size=10))),
        phq9=tuple(draw(st.lists(phq9_values, max_size=5))),
        practice_statuses=tuple(
            draw(st.lists(st.sampled_from(["not-started", "completed", "cancelled"]), max_size=3))
        ),
        related=related,
        has_maintenance_course=draw(st.booleans()),
    )


def fields(status: CourseStatus) -> CourseStatus:
    """The status without `next_transition_at`, which is not one of the compared fields."""
    return replace(status, next_transition_at=None)


@exhaustive
@given(facts=courses(), now=instants)
def test_status_changes_exactly_at_next_transition(facts: CourseFacts, now: datetime) -> None:
    status = compute_status(facts, now)
    change = status.next_transition_at

    if change is None:
        assert fields(compute_status(facts, now + FAR)) == fields(status)
        return
    assert change > now
    just_before = compute_status(facts, change - MICROSECOND)
    assert fields(just_before) == fields(status)
    assert just_before.next_transition_at == change
    assert fields(compute_status(facts, change)) != fields(status)


@exhaustive
@given(facts=courses(), now=instants, data=st.data())
def test_status_is_constant_until_next_transition(
    facts: CourseFacts, now: datetime, data: st.DataObject
) -> None:
    status = compute_status(facts, now)
    until = status.next_transition_at or now + FAR
    span = (until - now) // MICROSECOND

    later = now + MICROSECOND * data.draw(st.integers(0, span - 1), label="µs after now")

    assert fields(compute_status(facts, later)) == fields(status)


@settings(deadline=None)
@given(facts=courses(), now=instants)
def test_counts_are_consistent(facts: CourseFacts, now: datetime) -> None:
    status = compute_status(facts, now)

    if status.planned_sessions is not None:
        assert status.sessions_remaining is not None
        assert status.sessions_attended + status.sessions_remaining >= status.planned_sessions
    else:
        assert status.sessions_remaining is None
    if status.attendance_rate is not None:
        assert 0 <= status.attendance_rate <= 1
    assert (status.attendance_rate is None) == (
        status.sessions_attended + status.sessions_no_show == 0
    )
    assert status.practice_completed <= status.practice_assigned
    for flag in ("response", "remission", "safety_flag", "maintenance_recommended"):
        assert isinstance(getattr(status, flag), bool)
    assert not (status.maintenance_due and status.maintenance_overdue)
    assert not status.remission or status.response


@settings(deadline=None)
@given(facts=courses("acute"), now=instants)
def test_active_acute_phase_follows_the_counts(facts: CourseFacts, now: datetime) -> None:
    status = compute_status(replace(facts, status="active"), now)
    attended, planned = status.sessions_attended, status.planned_sessions
    assert planned is not None

    assert (status.phase == "acute-complete") == (attended >= planned)
    assert (status.phase == "initial") == (attended < min(3, planned))
    assert (status.phase == "termination") == (max(3, planned - 3) <= attended < planned)
    scheduled = status.phase != "acute-complete"
    assert status.next_session_number == (attended + 1 if scheduled else None)
    if not scheduled:
        assert status.next_session_due is None
    elif facts.period_start is not None:
        assert status.next_session_due is not None
    assert (status.engagement is None) == (status.next_session_due is None)


@settings(deadline=None)
@given(facts=courses(), now=instants, extra=sessions)
def test_later_facts_other_than_bookings_do_not_count(
    facts: CourseFacts, now: datetime, extra: SessionFact
) -> None:
    later = replace(extra, time=max(extra.time, now + MICROSECOND))
    with_later = replace(facts, sessions=(*facts.sessions, later))

    if later.outcome != "booked":
        assert fields(compute_status(with_later, now)) == fields(compute_status(facts, now))


@settings(deadline=None)
@given(
    acute=courses("acute"),
    maintenance=courses("maintenance"),
    now=instants,
)
def test_acute_course_mirrors_its_active_maintenance_course(
    acute: CourseFacts, maintenance: CourseFacts, now: datetime
) -> None:
    maintenance = replace(maintenance, status="active", related=acute)
    shown = compute_status(replace(acute, status="completed", related=maintenance), now)

    assert shown.phase == "maintenance"
    assert shown.next_session_number is None
    assert shown.maintenance_next_due == compute_status(maintenance, now).next_session_due
