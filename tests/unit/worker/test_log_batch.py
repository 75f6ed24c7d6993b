"""The development log of the relay: one line per batch, positions and counts, never data."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from ipt_core.events import Published
from ipt_worker.publishers import log_batch

_WRITTEN = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


async def test_a_batch_is_one_line_of_positions_and_counts_per_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = [
        Published(7, "fhir.resource.changed", _WRITTEN),
        Published(8, "ipt.course.status.changed", _WRITTEN),
        Published(9, "fhir.resource.changed", _WRITTEN),
    ]
    with caplog.at_level(logging.INFO, logger="ipt.events"):
        log_batch(batch)
        log_batch([])
    assert [r.getMessage() for r in caplog.records] == [
        "events published: seq 7-9, 3 (fhir.resource.changed 2, ipt.course.status.changed 1)"
    ]
