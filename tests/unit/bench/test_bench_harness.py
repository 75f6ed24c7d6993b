"""The benchmark harness's own logic: profile grouping, target verdicts, bundles (no servers)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.api.profile import classify, summarize
from bench.api.report import Measurement, Report
from bench.api.scenarios import transaction_bundle
from bench.api.wrk import WrkResult

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"


def frame(function: str, path: str) -> str:
    return f"{function} ({path}:1)"


def test_a_sample_is_charged_to_the_innermost_component_not_the_stdlib() -> None:
    stack = [
        frame("run_asgi", f"{SITE}/uvicorn/protocols/http/httptools_impl.py"),
        frame("execute", f"{SITE}/sqlalchemy/ext/asyncio/engine.py"),
        frame("fetch", f"{SITE}/asyncpg/prepared_stmt.py"),
        frame("wait_for", f"{STDLIB}/asyncio/tasks.py"),
    ]
    assert classify(stack) == "asyncpg"


def test_the_otel_span_name_lookup_wins_over_the_routing_under_it() -> None:
    stack = [
        frame("__call__", f"{SITE}/opentelemetry/instrumentation/asgi/__init__.py"),
        frame("_get_route_details", f"{SITE}/opentelemetry/instrumentation/fastapi/__init__.py"),
        frame("matches", f"{SITE}/starlette/routing.py"),
    ]
    assert classify(stack).startswith("OTel span name")
    assert classify(stack[::2][:1] + stack[2:]) == "routing (Starlette/FastAPI router)"


def test_summary_shares_add_up_to_the_samples(tmp_path: Path) -> None:
    folded = tmp_path / "read.folded"
    folded.write_text(
        f"{frame('read', '/src/ipt_api/fhir/interactions.py')} 3\n"
        f"{frame('fetch', f'{SITE}/asyncpg/connection.py')} 1\n"
    )
    rows = summarize(folded)
    assert [(name, n) for name, n, _ in rows] == [("our code: ipt_api", 3), ("asyncpg", 1)]
    assert sum(share for _, _, share in rows) == pytest.approx(100)


def _measure(scenario: str, target: str, per_second: float, p99: float = 5.0) -> Measurement:
    result = WrkResult(requests=100, seconds=10, errors=0, p50_ms=1.0, p99_ms=p99)
    return Measurement(scenario, target, 8, result, per_second)


def test_targets_are_reported_as_met_or_not_met(tmp_path: Path) -> None:
    report = Report({"machine": "test"})
    report.add(_measure("read", "ours", 300, p99=12))
    report.add(_measure("read", "peer", 100))
    report.add(_measure("read", "limit", 1000))
    report.add(_measure("create", "ours", 150))
    report.add(_measure("create", "peer", 100))
    markdown = report.write(tmp_path).read_text()
    verdicts = {
        t["target"]: t["verdict"]
        for t in json.loads((tmp_path / "results.json").read_text())["targets"]
    }
    assert verdicts["read by id ≥ 3x the peer"] == "met"
    assert verdicts["read by id ≥ 50% of the stack limit"] == "not met"
    assert verdicts["create ≥ 2x the peer"] == "not met"
    assert verdicts["search by patient ≥ 3x the peer"] == "not measured"
    assert verdicts["p99 of reads < 20 ms at 8 connections"] == "met"
    assert "| read by id | 8 | 300 req/s (1.0 / 12.0) | 100 req/s" in markdown
    assert "| 3.00 | 0.30 |" in markdown


def test_transaction_bundle_links_its_entries_by_urn_uuid() -> None:
    bundle = transaction_bundle(7, 5)
    entries = bundle["entry"]
    assert len(entries) == 100
    urns = {entry["fullUrl"] for entry in entries}
    text = json.dumps([entry["resource"] for entry in entries])
    assert '"reference": "Patient/' not in text
    assert all(urn in urns for urn in _references(text))
    assert all("id" not in entry["resource"] for entry in entries)


def _references(text: str) -> list[str]:
    return [part.split('"')[0] for part in text.split('"reference": "')[1:]]


def test_rounds_report_the_median_ratio_taken_within_each_round(tmp_path: Path) -> None:
    report = Report({"machine": "test"})
    # Round 1 ran in a slow minute for the peer only: its ratio alone would say "met".
    for round_, ours, peer in ((0, 300, 120), (1, 330, 80), (2, 280, 110)):
        report.add(replace(_measure("read", "ours", ours), round=round_))
        report.add(replace(_measure("read", "peer", peer), round=round_))
    markdown = report.write(tmp_path).read_text()
    targets = json.loads((tmp_path / "results.json").read_text())["targets"]
    (read,) = [t for t in targets if t["target"] == "read by id ≥ 3x the peer"]
    assert read["verdict"] == "not met"
    assert read["detail"] == "2.55x at 8 connections"  # median of 2.50, 4.12 and 2.55
    # Each server's median round in its cell; the ratio is not 300 / 110.
    assert "| read by id | 8 | 300 req/s (1.0 / 5.0) | 110 req/s (1.0 / 5.0) | — | 2.55 |" in (
        markdown
    )
