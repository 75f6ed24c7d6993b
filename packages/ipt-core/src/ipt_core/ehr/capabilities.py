"""What an EHR's CapabilityStatement allows: the push set and how each type is written.

Real EHRs differ (docs/ehr-sync.md): some accept no CarePlan or Goal, many have no
conditional update. The CapabilityStatement decides, so the endpoints file needs no
per-vendor switches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Capabilities", "TypeCapability", "parse_capabilities"]


@dataclass(frozen=True)
class TypeCapability:
    """The REST interactions offered for one resource type."""

    interactions: frozenset[str]
    conditional_update: bool = False
    search_params: frozenset[str] = frozenset()

    @property
    def finds_by_identifier(self) -> bool:
        """Whether `identifier` can be searched on (assumed when no parameter is declared)."""
        declared = self.search_params - {"_id", "_lastUpdated"}
        return not declared or "identifier" in self.search_params

    @property
    def writable(self) -> bool:
        """Whether resources of this type can be created (or created by update)."""
        return bool({"create", "update"} & self.interactions)


@dataclass(frozen=True)
class Capabilities:
    """The types an EHR serves and what it offers for each."""

    types: dict[str, TypeCapability] = field(default_factory=dict)
    software: str | None = None

    def push_types(self, wanted: Iterable[str]) -> tuple[str, ...]:
        """Of `wanted`, the types the EHR lets us create or update, in order."""
        return tuple(t for t in wanted if t in self.types and self.types[t].writable)

    def uses_conditional_update(self, resource_type: str) -> bool:
        """Conditional update (PUT Type?identifier=…) is offered for `resource_type`."""
        capability = self.types.get(resource_type)
        return bool(
            capability
            and capability.conditional_update
            and "update" in capability.interactions
            and capability.finds_by_identifier
        )

    def finds_by_identifier(self, resource_type: str) -> bool:
        """Whether our copy can be found by our sync identifier (search on `identifier`)."""
        capability = self.types.get(resource_type)
        return bool(
            capability
            and "search-type" in capability.interactions
            and capability.finds_by_identifier
        )

    def summary(self) -> dict[str, Any]:
        """A JSON view for the status endpoint: per type, interactions and conditional update."""
        return {
            "software": self.software,
            "types": {
                name: {
                    "interactions": sorted(cap.interactions),
                    "conditionalUpdate": cap.conditional_update,
                }
                for name, cap in sorted(self.types.items())
            },
        }

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Capabilities:
        """Rebuild from `summary()` (stored in the database)."""
        types = {
            name: TypeCapability(frozenset(value["interactions"]), value["conditionalUpdate"])
            for name, value in summary.get("types", {}).items()
        }
        return cls(types, summary.get("software"))


def parse_capabilities(statement: dict[str, Any]) -> Capabilities:
    """Read the server-mode REST resources of a CapabilityStatement."""
    types: dict[str, TypeCapability] = {}
    for rest in statement.get("rest", []):
        if rest.get("mode") != "server":
            continue
        for resource in rest.get("resource", []):
            name = resource.get("type")
            if not isinstance(name, str):
                continue
            interactions = frozenset(
                i.get("code") for i in resource.get("interaction", []) if isinstance(i, dict)
            )
            params = frozenset(
                p.get("name") for p in resource.get("searchParam", []) if isinstance(p, dict)
            )
            types[name] = TypeCapability(
                frozenset(i for i in interactions if isinstance(i, str)),
                resource.get("conditionalUpdate") is True,
                frozenset(p for p in params if isinstance(p, str)),
            )
    software = statement.get("software", {}).get("name")
    return Capabilities(types, software if isinstance(software, str) else None)
