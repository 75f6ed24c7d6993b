"""Shared by the IPT unit tests: the course start they use, FHIR ids and instants to draw, and
the type of the R4 validity check (the `valid_r4` fixture of conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

__all__ = ["START", "FhirCheck", "fhir_ids", "instants"]

FhirCheck = Callable[[dict[str, Any]], None]
START = datetime(2026, 1, 5, 9, tzinfo=UTC)  # the worked example: docs/status-rules.md

fhir_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)  # the FHIR `id` datatype
instants = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2150, 1, 1), timezones=st.just(UTC)
)
