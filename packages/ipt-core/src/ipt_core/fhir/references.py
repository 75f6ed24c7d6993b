"""Parsing of FHIR reference strings: `Type/id`, `Type/id/_history/n`, absolute URLs."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Target", "parse_reference"]

_RELATIVE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<version>[^/]+))?$"
)


@dataclass(frozen=True)
class Target:
    """What a reference points at: type (None for a bare id or URN) and id."""

    type: str | None
    id: str
    version: str | None = None


def parse_reference(reference: str) -> Target | None:
    """Return the target of `reference`, or None for a contained (`#…`) reference."""
    if not reference or reference.startswith("#"):
        return None
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return Target(None, reference)
    match = _RELATIVE.search(reference)
    if match is None:
        return Target(None, reference)
    return Target(match["type"], match["id"], match["version"])
