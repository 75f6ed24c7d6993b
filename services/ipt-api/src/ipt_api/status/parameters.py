"""A course status as a FHIR `Parameters` resource (for `CarePlan/{id}/$ipt-status`)."""

from __future__ import annotations

from typing import Any

__all__ = ["status_parameters"]

_INSTANTS = frozenset(
    {"last_attended_at", "next_session_due", "maintenance_next_due", "computed_at"}
)


def status_parameters(status: dict[str, Any]) -> dict[str, Any]:
    """Render each non-null field as a typed parameter; null fields are left out."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            _parameter(name, value) for name, value in status.items() if value is not None
        ],
    }


def _parameter(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"name": name, "valueBoolean": value}
    if isinstance(value, int):
        return {"name": name, "valueInteger": value}
    if isinstance(value, float):
        return {"name": name, "valueDecimal": value}
    if name in _INSTANTS:
        return {"name": name, "valueInstant": value}
    return (
        {"name": name, "valueCode": value}
        if " " not in str(value)
        else {"name": name, "valueString": str(value)}
    )
