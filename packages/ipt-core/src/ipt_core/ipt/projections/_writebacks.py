"""Recognising the status engine's own write-backs, which must never trigger a recompute.

The status engine writes two derived values back into FHIR (docs/fhir-mapping.md, "Derived
values written back"): the CarePlan's `ipt-phase` extension and the symptom Goal's
`achievementStatus`. A write whose only change
is one of those is its own echo: recomputing on it would loop forever.
"""

from __future__ import annotations

from typing import Any

from ipt_core.ipt.codes import PHASE_EXTENSION

__all__ = ["is_status_writeback"]


def is_status_writeback(previous: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    """Whether `current` differs from `previous` only in a value the status engine derives.

    Compares the two versions without `meta` and without the derived element: the phase
    extension of a CarePlan, `achievementStatus` of a Goal. Other types never match.
    """
    if previous is None:
        return False
    resource_type = current.get("resourceType")
    if resource_type != previous.get("resourceType"):
        return False
    if resource_type == "CarePlan":
        return _without_phase(previous) == _without_phase(current)
    if resource_type == "Goal":
        return _without(previous, "achievementStatus") == _without(current, "achievementStatus")
    return False


def _without(resource: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in {"meta", *keys}}


def _without_phase(careplan: dict[str, Any]) -> dict[str, Any]:
    stripped = _without(careplan, "extension")
    extensions = careplan.get("extension")
    if isinstance(extensions, list):
        others = [
            e for e in extensions if not (isinstance(e, dict) and e.get("url") == PHASE_EXTENSION)
        ]
        if others:
            stripped["extension"] = others
    return stripped
