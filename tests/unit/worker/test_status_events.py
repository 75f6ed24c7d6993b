"""Which events a status change emits, with per-course increasing sequence numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ipt_worker.status_events import status_events

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


def status(**changes: Any) -> dict[str, Any]:
    base = {
        "phase": "middle",
        "engagement": "on-track",
        "maintenance_due": False,
        "response": False,
        "remission": False,
    }
    return {**base, **changes}


def types(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    events = status_events("c1", previous, current, first_sequence=7, now=NOW)
    assert [e["sequence"] for e in events] == [f"{7 + i:020d}" for i in range(len(events))]
    assert {e["partitionkey"] for e in events} == {"c1"}
    assert {e["subject"] for e in events} == {"CarePlan/c1"}
    assert len({e["id"] for e in events}) == len(events)
    return [e["type"] for e in events]


def test_first_status_announces_phase_and_engagement() -> None:
    assert types(None, status()) == [
        "ipt.course.status.changed",
        "ipt.course.phase.changed",
        "ipt.course.engagement.changed",
    ]


def test_a_field_change_without_transition_is_only_status_changed() -> None:
    assert types(status(), status(sessions_attended=9)) == ["ipt.course.status.changed"]


def test_transitions() -> None:
    assert types(status(), status(engagement="overdue")) == [
        "ipt.course.status.changed",
        "ipt.course.engagement.changed",
    ]
    assert types(status(), status(phase="completed")) == [
        "ipt.course.status.changed",
        "ipt.course.phase.changed",
        "ipt.course.completed",
    ]
    assert types(status(), status(response=True, remission=True)) == [
        "ipt.course.status.changed",
        "ipt.outcome.response",
        "ipt.outcome.remission",
    ]
    assert types(
        status(phase="maintenance"), status(phase="maintenance", maintenance_due=True)
    ) == ["ipt.course.status.changed", "ipt.course.maintenance.due"]


def test_status_changed_carries_the_previous_phase_and_engagement() -> None:
    (event, *_) = status_events(
        "c1", status(), status(phase="termination"), first_sequence=1, now=NOW
    )
    assert event["data"]["previous_phase"] == "middle"
    assert event["data"]["previous_engagement"] == "on-track"
    assert event["data"]["phase"] == "termination"
    assert event["specversion"] == "1.0"


def test_status_changed_carries_the_stored_version() -> None:
    old, new = status(), status(phase="termination")
    events = status_events("c1", old, new, first_sequence=1, now=NOW, version=5)
    assert events[0]["data"]["version"] == 5
    assert all("version" not in e["data"] for e in events[1:])
