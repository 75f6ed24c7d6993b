"""Why a status changed, as the history records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ipt_worker.status_history import change_cause

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


@dataclass
class Stored:
    next_transition_at: datetime | None


def test_the_first_status_is_created() -> None:
    assert change_cause(None, NOW) == "created"


def test_a_change_at_or_after_the_planned_transition_is_time() -> None:
    assert change_cause(Stored(NOW), NOW) == "time"
    assert change_cause(Stored(NOW - timedelta(hours=1)), NOW) == "time"


def test_a_change_before_the_planned_transition_is_facts() -> None:
    assert change_cause(Stored(NOW + timedelta(days=1)), NOW) == "facts"
    assert change_cause(Stored(None), NOW) == "facts"
