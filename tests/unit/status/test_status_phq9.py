"""PHQ-9 rules of docs/status-rules.md, with expected values computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ipt_core.status import CourseFacts, Phq9Fact, compute_status

START = datetime.fromisoformat("2026-01-05T09:00:00Z")
LATER = START + timedelta(weeks=20)
SCORES = ("phq9_baseline", "phq9_latest", "phq9_change")
PHQ9_FIELDS = (*SCORES, "severity", "response", "remission", "goal_status")


def at(text: str) -> datetime:
    """An ISO 8601 UTC instant."""
    return datetime.fromisoformat(text)


def weekly_scores(*scores: int) -> tuple[Phq9Fact, ...]:
    return tuple(
        Phq9Fact(f"p{week}", START + timedelta(weeks=week), score)
        for week, score in enumerate(scores)
    )


def course(*values: Phq9Fact, **changes: Any) -> CourseFacts:
    facts: dict[str, Any] = {"status": "active", "period_start": START, "phq9": values}
    return CourseFacts(**(facts | changes))


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param((), (None, None, None, None, False, False, "in-progress"), id="none"),
        pytest.param((12,), (12, 12, 0, "moderate", False, False, "in-progress"), id="one"),
        pytest.param((9, 4), (9, 4, -5, "minimal", False, False, "improving"), id="baseline-9"),
        pytest.param((10, 5), (10, 5, -5, "mild", True, False, "improving"), id="half-of-10"),
        pytest.param((10, 4), (10, 4, -6, "minimal", True, True, "achieved"), id="remission-4"),
        pytest.param((10, 6), (10, 6, -4, "mild", False, False, "improving"), id="0.8-of-10"),
        pytest.param((20, 10), (20, 10, -10, "moderate", True, False, "improving"), id="half-20"),
        pytest.param((21, 11), (21, 11, -10, "moderate", False, False, "improving"), id="11>10.5"),
        pytest.param((8, 13), (8, 13, 5, "moderate", False, False, "worsening"), id="plus-5"),
        pytest.param((8, 12), (8, 12, 4, "moderate", False, False, "no-change"), id="plus-4"),
        pytest.param((15, 12), (15, 12, -3, "moderate", False, False, "improving"), id="12=0.8*15"),
        pytest.param((15, 13), (15, 13, -2, "moderate", False, False, "no-change"), id="13>0.8*15"),
        pytest.param((4, 0), (4, 0, -4, "minimal", False, False, "improving"), id="low-baseline"),
        pytest.param((18, 2, 9), (18, 9, -9, "mild", True, False, "improving"), id="latest-wins"),
        pytest.param((27, 20, 27), (27, 27, 0, "severe", False, False, "no-change"), id="same"),
    ],
)
def test_phq9_outcomes(scores: tuple[int, ...], expected: tuple[object, ...]) -> None:
    status = compute_status(course(*weekly_scores(*scores)), LATER)

    assert tuple(getattr(status, name) for name in PHQ9_FIELDS) == expected


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately-severe"),
        (19, "moderately-severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_severity_bands(score: int, severity: str) -> None:
    assert compute_status(course(*weekly_scores(score)), LATER).severity == severity


@pytest.mark.parametrize(
    ("earlier_item9", "latest_item9", "flag"),
    [
        (None, 1, True),
        (None, 3, True),
        (None, 0, False),
        (3, None, False),  # only the latest PHQ-9 counts
        (2, 0, False),
    ],
)
def test_safety_flag_reads_item9_of_the_latest(
    earlier_item9: int | None, latest_item9: int | None, flag: bool
) -> None:
    values = (
        Phq9Fact("p0", START, 20, earlier_item9),
        Phq9Fact("p1", START + timedelta(weeks=1), 18, latest_item9),
    )

    assert compute_status(course(*values), LATER).safety_flag is flag


def test_no_phq9_means_no_safety_flag() -> None:
    assert compute_status(course(), LATER).safety_flag is False


def test_window_opens_exactly_14_days_before_the_course_start() -> None:
    values = (
        Phq9Fact("early", at("2025-12-22T09:00Z"), 20),
        Phq9Fact("later", at("2026-02-02T09:00Z"), 8),
    )

    status = compute_status(course(*values), LATER)

    assert (status.phq9_baseline, status.response) == (20, True)


def test_window_excludes_1_microsecond_earlier() -> None:
    values = (
        Phq9Fact("early", at("2025-12-22T08:59:59.999999Z"), 20),
        Phq9Fact("later", at("2026-02-02T09:00Z"), 8),
        Phq9Fact("last", at("2026-03-02T09:00Z"), 6),
    )

    status = compute_status(course(*values), LATER)

    assert (status.phq9_baseline, status.phq9_latest, status.response) == (8, 6, False)


def test_window_closes_at_the_course_end_inclusive() -> None:
    end = at("2026-03-30T09:00Z")
    values = (
        Phq9Fact("first", START, 18),
        Phq9Fact("at-end", end, 4),
        Phq9Fact("after-end", end + timedelta(microseconds=1), 20),
    )

    status = compute_status(course(*values, status="completed", period_end=end), LATER)

    assert (status.phq9_latest, status.remission, status.phase) == (4, True, "completed")
    assert status.maintenance_recommended is False


def test_ties_in_time_are_ordered_by_id() -> None:
    values = (Phq9Fact("b", START, 6), Phq9Fact("a", START, 20), Phq9Fact("c", START, 12))

    status = compute_status(course(*values), LATER)

    assert (status.phq9_baseline, status.phq9_latest) == (20, 12)


def test_a_value_counts_from_its_own_time() -> None:
    values = weekly_scores(18, 8)
    facts = course(*values)

    before = compute_status(facts, values[1].time - timedelta(microseconds=1))
    at_time = compute_status(facts, values[1].time)

    assert (before.phq9_latest, before.response) == (18, False)
    assert (at_time.phq9_latest, at_time.response) == (8, True)
