"""An independent check that every FHIR JSON body the server sends is valid R4.

Uses `fhirkit` (a Rust implementation of the R4 structure definitions), not fhir.resources,
so the server's own validator cannot hide its own mistakes.
"""

from __future__ import annotations

from typing import Any

import fhirkit
import orjson

__all__ = ["FhirBodyChecker"]


class FhirBodyChecker:
    """Collects structural R4 errors of every response body it is shown."""

    def __init__(self) -> None:
        """Start with no problems seen."""
        self.problems: list[str] = []
        self.checked = 0

    def check_body(self, url: str, content_type: str, body: bytes) -> None:
        """Validate `body` when it is FHIR JSON (resources, Bundles, OperationOutcomes)."""
        if "fhir+json" not in content_type or not body:
            return
        resource: Any = orjson.loads(body)
        self.checked += 1
        for issue in fhirkit.validate(resource):
            if issue.severity == "error":
                self.problems.append(f"{url}: {issue}")
