"""The session linking rules of docs/fhir-mapping.md as a pure decision (`decide_link`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ipt_core.ipt.projections import CourseWindow, Link, decide_link

JAN = datetime(2026, 1, 5, 9, tzinfo=UTC)
FEB = datetime(2026, 2, 2, 9, tzinfo=UTC)
NO_LINK = Link(None, None)
EXTENSION, OUTCOME_REFERENCE, AUTO = "extension", "outcome-reference", "auto"


def window(course_id: str, status: str = "active", **changes: Any) -> CourseWindow:
    fields: dict[str, Any] = {"period_start": JAN, "period_end": None} | changes
    return CourseWindow(course_id, status, fields["period_start"], fields["period_end"])


def link(**changes: Any) -> Link:
    arguments: dict[str, Any] = {
        "explicit_course_id": None,
        "listing": [],
        "is_ipt": True,
        "courses": [window("a")],
        "start": FEB,
        "previous": NO_LINK,
        "session_rewritten": True,
    }
    return decide_link(**(arguments | changes))


def test_the_extension_comes_first() -> None:
    assert link(explicit_course_id="x", listing=[window("b")]) == Link("x", EXTENSION)


def test_an_outcome_reference_comes_second() -> None:
    assert link(listing=[window("b")]) == Link("b", OUTCOME_REFERENCE)


def test_of_several_listing_courses_the_latest_started_wins() -> None:
    listing = [window("old"), window("new", period_start=FEB), window("aaa")]
    assert link(listing=listing) == Link("new", OUTCOME_REFERENCE)


def test_exactly_one_course_containing_the_start_auto_links() -> None:
    assert link() == Link("a", AUTO)


@pytest.mark.parametrize("status", ["active", "on-hold", "completed"])
def test_auto_link_statuses(status: str) -> None:
    assert link(courses=[window("a", status)]) == Link("a", AUTO)


@pytest.mark.parametrize("status", ["draft", "revoked", "entered-in-error", "unknown"])
def test_other_statuses_never_auto_link(status: str) -> None:
    assert link(courses=[window("a", status)]) == NO_LINK


def test_two_candidate_courses_leave_the_session_unlinked() -> None:
    assert link(courses=[window("a"), window("b", "on-hold")]) == NO_LINK


def test_the_period_is_closed_at_both_ends() -> None:
    course = window("a", period_start=FEB, period_end=FEB + timedelta(days=1))
    assert link(courses=[course], start=FEB) == Link("a", AUTO)
    assert link(courses=[course], start=FEB + timedelta(days=1)) == Link("a", AUTO)
    assert link(courses=[course], start=FEB - timedelta(microseconds=1)) == NO_LINK
    assert link(courses=[course], start=FEB + timedelta(days=1, microseconds=1)) == NO_LINK


def test_a_session_not_naming_ipt_or_without_time_is_never_auto_linked() -> None:
    assert link(is_ipt=False) == NO_LINK
    assert link(start=None) == NO_LINK


def test_a_course_write_keeps_an_auto_link() -> None:
    kept = Link("gone", AUTO)
    assert link(previous=kept, session_rewritten=False, courses=[]) == kept
    assert link(previous=kept, session_rewritten=True, courses=[]) == NO_LINK


def test_a_dropped_explicit_link_is_decided_again() -> None:
    previous = Link("b", OUTCOME_REFERENCE)
    assert link(previous=previous, session_rewritten=False) == Link("a", AUTO)
