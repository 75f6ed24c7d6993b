"""The identifiers that tie a resource to its copy on the other side of a sync.

- Pushed resources carry `SYNC_SOURCE` + our `Type/id`: a retried push finds (or
  conditionally updates) the copy it made before, never a second one.
- Pulled resources carry `ehr_identifier_system(endpoint)` + the EHR's `Type/id`, and
  `meta.source` = the EHR resource's URL: a later pull updates the same resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ipt_core.ipt.codes import CANONICAL_BASE

__all__ = [
    "EHR_IDENTIFIER_PREFIX",
    "SYNC_SOURCE",
    "ehr_identifier_system",
    "pulled_from",
    "pushed_by_us",
]

SYNC_SOURCE: Final = f"{CANONICAL_BASE}/identifier/sync-source"
EHR_IDENTIFIER_PREFIX: Final = f"{CANONICAL_BASE}/identifier/ehr/"


def ehr_identifier_system(endpoint: str) -> str:
    """The identifier system of resources pulled from `endpoint`."""
    return f"{EHR_IDENTIFIER_PREFIX}{endpoint}"


def _identifiers(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = resource.get("identifier")
    if isinstance(found, dict):  # Appointment-style single identifiers do not occur in R4,
        return [found]  # but a defensive read costs nothing
    return [i for i in found or [] if isinstance(i, dict)]


def pulled_from(resource: Mapping[str, Any]) -> set[str]:
    """The endpoints `resource` was pulled from (by its identifiers)."""
    return {
        str(i["system"]).removeprefix(EHR_IDENTIFIER_PREFIX)
        for i in _identifiers(resource)
        if isinstance(i.get("system"), str) and str(i["system"]).startswith(EHR_IDENTIFIER_PREFIX)
    }


def pushed_by_us(resource: Mapping[str, Any]) -> bool:
    """Whether a remote resource is one we pushed (it carries our sync-source identifier)."""
    return any(i.get("system") == SYNC_SOURCE for i in _identifiers(resource))
