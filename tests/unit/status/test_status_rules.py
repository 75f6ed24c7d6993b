"""The thresholds default to the docs/status-rules.md settings and every one of them is honoured."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction

from ipt_core.status import (
    DEFAULT_RULES,
    Cadence,
    CourseFacts,
    CourseTypeRules,
    Phq9Fact,
    SessionFact,
    StatusRules,
    compute_status,
)

DAY = timedelta(days=1)
START = datetime.fromisoformat("2026-01-05T09:00:00Z")


def test_defaults_are_the_documented_settings() -> None:
    assert DEFAULT_RULES.acute == CourseTypeRules(Cadence.of_days(7), 3 * DAY, 7 * DAY, 23 * DAY)
    assert DEFAULT_RULES.maintenance == CourseTypeRules(
        Cadence.of_months(1), 7 * DAY, 14 * DAY, 30 * DAY
    )
    assert (DEFAULT_RULES.initial_sessions, DEFAULT_RULES.termination_sessions) == (3, 3)
    assert DEFAULT_RULES.default_acute_planned_sessions == 20
    assert DEFAULT_RULES.maintenance_window == 7 * DAY
    phq9 = DEFAULT_RULES.phq9
    assert phq9.lookback == 14 * DAY
    assert (phq9.min_baseline, phq9.response_ratio, phq9.remission_below) == (10, Fraction(1, 2), 5)
    assert (phq9.improving_drop, phq9.improving_ratio) == (5, Fraction(4, 5))
    assert phq9.worsening_rise == 5


def test_custom_thresholds_are_used() -> None:
    facts = CourseFacts(
        status="active",
        period_start=START,
        sessions=tuple(SessionFact(f"s{i}", START + i * 7 * DAY, "attended") for i in range(4)),
        phq9=(Phq9Fact("p0", START, 12), Phq9Fact("p1", START + 7 * DAY, 6)),
    )
    rules = StatusRules(
        acute=CourseTypeRules(Cadence.of_days(14), DAY, 2 * DAY, 5 * DAY),
        initial_sessions=2,
        termination_sessions=1,
        default_acute_planned_sessions=6,
        phq9=replace(DEFAULT_RULES.phq9, min_baseline=13),
    )
    now = START + 21 * DAY + 14 * DAY + DAY + timedelta(microseconds=1)

    status = compute_status(facts, now, rules)

    assert (status.planned_sessions, status.phase) == (6, "middle")  # n = 5 ≤ 6 - 1
    assert status.next_session_due == START + 35 * DAY
    assert status.engagement == "overdue"
    assert status.next_transition_at == START + 37 * DAY + timedelta(microseconds=1)
    assert status.response is False  # baseline 12 < 13
    assert compute_status(facts, now).response is True
