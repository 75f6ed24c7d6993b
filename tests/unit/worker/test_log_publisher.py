"""The development publisher logs one line per batch: positions and counts, never data."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ipt_core.events import OutboxEvent
from ipt_worker.publishers import LogPublisher


def _event(seq: int, type_: str, patient: str) -> OutboxEvent:
    return OutboxEvent(
        seq=seq,
        id=f"evt-{seq}",
        type=type_,
        partition_key=f"Patient/{patient}",
        envelope={"data": {"resource": {"name": [{"family": patient}]}}},
    )


async def test_a_batch_is_one_line_of_positions_and_counts_per_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = [
        _event(7, "fhir.resource.changed", "Okonkwo"),
        _event(8, "ipt.course.status.changed", "Lindqvist"),
        _event(9, "fhir.resource.changed", "Okonkwo"),
    ]
    conn: Any = None  # the log publisher writes nothing to the database
    with caplog.at_level(logging.INFO, logger="ipt.events"):
        await LogPublisher().publish(conn, events)
        await LogPublisher().publish(conn, [])
    assert [r.getMessage() for r in caplog.records] == [
        "events published: seq 7-9, 3 (fhir.resource.changed 2, ipt.course.status.changed 1)"
    ]
    assert "Okonkwo" not in caplog.text
    assert "Lindqvist" not in caplog.text
