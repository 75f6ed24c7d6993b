"""What an export is: the kick-off request, the stored job and its progress, its files.

Stored and read by `_repository.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "ExportJob",
    "ExportRequest",
    "OutputFile",
]


@dataclass(frozen=True)
class ExportRequest:
    """A validated kick-off: what to export, for whom, and since when."""

    owner: str  # the token subject (the client) that alone may read the results
    level: str  # system | patient | group
    types: tuple[str, ...]
    request_url: str
    group_id: str | None = None
    since: datetime | None = None
    type_filters: dict[str, list[str]] = field(default_factory=dict)  # type -> query strings


@dataclass(frozen=True)
class ExportJob:
    """A stored export job and its progress."""

    id: str
    owner: str
    level: str
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None
    type_filters: dict[str, list[str]]
    request_url: str
    state: str
    transaction_time: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    type_index: int
    after_id: str | None
    next_chunk: int
    exported: int
    error: str | None

    @staticmethod
    def from_row(row: Any) -> ExportJob:
        """Build a job from a `bulk_export` row (its columns are named like the fields)."""
        values = {field.name: getattr(row, field.name) for field in fields(ExportJob)}
        values |= {"types": tuple(row.types), "type_filters": dict(row.type_filters)}
        return ExportJob(**values)


@dataclass(frozen=True)
class OutputFile:
    """One NDJSON file of a completed export: a resource type and how many lines it has."""

    resource_type: str
    count: int
