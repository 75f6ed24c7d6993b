"""The results of one `make bench` run as a Markdown table and JSON, with the issue's targets.

Targets are report lines (met / not met / not measured), never assertions: absolute numbers
on shared machines vary, and a benchmark that fails a build on a busy day helps nobody.

With several rounds (`--rounds`), a cell shows the round with the median rate, and a ratio
is the median of the rounds' own ratios: each round's servers ran minutes apart at most, so
a ratio is taken within a round, and the median leaves out a round the machine's drift spoilt.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.api.scenarios import LIMIT, OURS, PEER, SCENARIOS, Scenario
from bench.api.wrk import WrkResult

__all__ = ["Measurement", "Report"]


@dataclass(frozen=True)
class Measurement:
    """One scenario, one server, one concurrency."""

    scenario: str
    target: str
    connections: int
    result: WrkResult
    per_second: float  # requests/s, or resources/s for bulk loads
    round: int = 0


@dataclass(frozen=True)
class _Target:
    text: str
    scenario: str
    versus: str  # PEER or LIMIT
    ratio: float


_RATIO_TARGETS = (
    _Target("read by id ≥ 3x the peer", "read", PEER, 3.0),
    _Target("read by id ≥ 50% of the stack limit", "read", LIMIT, 0.5),
    _Target("search by patient ≥ 3x the peer", "search", PEER, 3.0),
    _Target("create ≥ 2x the peer", "create", PEER, 2.0),
    _Target("bulk load by transaction ≥ 2x the peer", "bulk", PEER, 2.0),
)
_READ_P99_MS = 20.0
_READ_P99_CONNECTIONS = 8


class Report:
    """Collects measurements and writes `results.md` and `results.json`."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.measurements: list[Measurement] = []

    def add(self, measurement: Measurement) -> None:
        """Record one measurement."""
        self.measurements.append(measurement)

    def write(self, directory: Path) -> Path:
        """Write the Markdown and JSON files into `directory`; return the Markdown's path."""
        directory.mkdir(parents=True, exist_ok=True)
        markdown = directory / "results.md"
        markdown.write_text(self.markdown())
        rows = [
            {
                **asdict(m.result),
                "scenario": m.scenario,
                "target": m.target,
                "connections": m.connections,
                "round": m.round,
                "per_second": m.per_second,
            }
            for m in self.measurements
        ]
        document = {"meta": self.meta, "measurements": rows, "targets": self._targets()}
        (directory / "results.json").write_text(json.dumps(document, indent=2) + "\n")
        return markdown

    def markdown(self) -> str:
        """The table of every scenario and concurrency, then the targets."""
        lines = [
            "# `make bench` results",
            "",
            *(f"- {key}: {value}" for key, value in self.meta.items()),
            "",
            "| scenario | conns | ours | peer (sekmet-fhir) | stack limit"
            " | ours/peer | ours/limit |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for scenario in SCENARIOS:
            for connections in self._connections():
                cells = {t: self._find(scenario.name, t, connections) for t in (OURS, PEER, LIMIT)}
                if not any(cells.values()):
                    continue
                values = [_cell(scenario, cells[t]) for t in (OURS, PEER, LIMIT)]
                ratios = [self._ratio(scenario.name, t, connections) for t in (PEER, LIMIT)]
                values += [_shown(ratio) for ratio in ratios]
                lines.append(f"| {scenario.label} | {connections} | " + " | ".join(values) + " |")
        lines += [
            "",
            "Cells: successful requests/s (resources/s for bulk loads), then p50 / p99 latency in"
            " ms; `E` counts failed requests (non-2xx, timeouts, socket errors).",
            "",
            '## Targets (issue 11, "Done when")',
            "",
            *(
                f"- {line['target']}: **{line['verdict']}** ({line['detail']})"
                for line in self._targets()
            ),
            "",
        ]
        return "\n".join(lines)

    def _connections(self) -> list[int]:
        return sorted({m.connections for m in self.measurements}, reverse=True)

    def _runs(self, scenario: str, target: str, connections: int) -> dict[int, Measurement]:
        """The measurements of one cell, by round."""
        return {
            m.round: m
            for m in self.measurements
            if (m.scenario, m.target, m.connections) == (scenario, target, connections)
        }

    def _find(self, scenario: str, target: str, connections: int) -> Measurement | None:
        """The cell's round with the median rate (the lower middle of an even count)."""
        runs = sorted(self._runs(scenario, target, connections).values(), key=_rate)
        return runs[(len(runs) - 1) // 2] if runs else None

    def _ratio(self, scenario: str, other: str, connections: int) -> float | None:
        """The median over rounds of ours / `other`, each ratio within one round."""
        ours = self._runs(scenario, OURS, connections)
        theirs = self._runs(scenario, other, connections)
        ratios = [
            ours[r].per_second / theirs[r].per_second
            for r in sorted(ours.keys() & theirs.keys())
            if theirs[r].per_second > 0
        ]
        return statistics.median(ratios) if ratios else None

    def _targets(self) -> list[dict[str, str]]:
        lines = []
        for target in _RATIO_TARGETS:
            levels = sorted(
                (m.connections for m in self.measurements if m.scenario == target.scenario),
                reverse=True,
            )
            top = levels[0] if levels else 0  # the most connections this scenario ran at
            ratio = self._ratio(target.scenario, target.versus, top)
            if ratio is None:
                lines.append({"target": target.text, "verdict": "not measured", "detail": "—"})
                continue
            lines.append(
                {
                    "target": target.text,
                    "verdict": "met" if ratio >= target.ratio else "not met",
                    "detail": f"{ratio:.2f}x at {top} connections",
                }
            )
        lines.append(self._read_latency_target())
        return lines

    def _read_latency_target(self) -> dict[str, str]:
        text = f"p99 of reads < {_READ_P99_MS:.0f} ms at {_READ_P99_CONNECTIONS} connections"
        found = [
            (s.name, m)
            for s in SCENARIOS
            if s.reads and (m := self._find(s.name, OURS, _READ_P99_CONNECTIONS)) is not None
        ]
        if not found:
            return {"target": text, "verdict": "not measured", "detail": "—"}
        worst = max(m.result.p99_ms for _, m in found)
        detail = ", ".join(f"{name} {m.result.p99_ms:.1f} ms" for name, m in found)
        return {
            "target": text,
            "verdict": "met" if worst < _READ_P99_MS else "not met",
            "detail": detail,
        }


def _cell(scenario: Scenario, m: Measurement | None) -> str:
    if m is None:
        return "—"
    unit = "res/s" if scenario.resources_per_request else "req/s"
    errors = f", E {m.result.errors}" if m.result.errors else ""
    return f"{m.per_second:,.0f} {unit} ({m.result.p50_ms:.1f} / {m.result.p99_ms:.1f}{errors})"


def _rate(m: Measurement) -> float:
    return m.per_second


def _shown(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}"
