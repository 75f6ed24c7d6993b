"""The EHR sync timings come from the worker's `IPT_EHR_*` settings, one for one."""

from __future__ import annotations

import pytest

from ipt_worker.ehr.context import EhrTiming, timing_from
from ipt_worker.settings import WorkerSettings


def test_every_timing_is_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPT_EHR_TIMEOUT_S", "7.5")
    monkeypatch.setenv("IPT_EHR_PAGE_SIZE", "25")
    monkeypatch.setenv("IPT_EHR_CONCURRENCY", "2")
    timing = timing_from(WorkerSettings())
    assert (timing.timeout_s, timing.page_size, timing.concurrency) == (7.5, 25, 2)
    assert timing.lease_s == EhrTiming().lease_s  # the defaults agree
