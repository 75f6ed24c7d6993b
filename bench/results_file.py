"""Where the benchmarks outside `bench.api` leave their results: `bench/results/<name>.json`
and `<name>.md` (not committed), next to the HTTP benchmark's `results.md`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "write_results"]

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, data: dict[str, Any], markdown: str) -> Path:
    """Write `data` as `<name>.json` and `markdown` as `<name>.md`; return the Markdown's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path
