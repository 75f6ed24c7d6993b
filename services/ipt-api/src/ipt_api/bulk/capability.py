"""What the CapabilityStatement says about `$export` (Bulk Data Access IG operations)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = ["BULK_DATA_CAPABILITY", "system_operations", "with_bulk_export"]

BULK_DATA_CAPABILITY: Final = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
_DEFINITION: Final = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"


def system_operations() -> list[dict[str, Any]]:
    """The system-level `$export` operation."""
    return [{"name": "export", "definition": f"{_DEFINITION}export"}]


def with_bulk_export(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resource entries with `Patient/$export`, plus a Group entry for `Group/[id]/$export`.

    Groups are derived, not stored (docs/analytics.md): the Group entry lists the operation
    and no interaction.
    """
    entries = []
    for entry in resources:
        if entry["type"] == "Patient":
            operation = {"name": "export", "definition": f"{_DEFINITION}patient-export"}
            entry = {**entry, "operation": [*entry.get("operation", []), operation]}
        entries.append(entry)
    group = {"name": "export", "definition": f"{_DEFINITION}group-export"}
    return [*entries, {"type": "Group", "operation": [group]}]
