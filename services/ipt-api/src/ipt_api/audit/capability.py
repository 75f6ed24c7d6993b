"""The AuditEvent entry of the CapabilityStatement: read and search only, never written."""

from __future__ import annotations

from typing import Any

__all__ = ["audit_capability"]

_SEARCH_PARAMS = (
    ("date", "date", "When the event was recorded (eq, ge, gt, le, lt)"),
    ("agent", "reference", "The token's subject or client id"),
    ("entity", "reference", "The resource the event is about (Type/id or Type)"),
    ("patient", "reference", "The patient whose data it was"),
    ("subtype", "token", "The FHIR interaction (read, search-type, create …)"),
    ("action", "token", "C | R | U | D | E"),
    ("outcome", "token", "0 | 4 | 8 | 12"),
    ("type", "token", "Always rest"),
)


def audit_capability() -> dict[str, Any]:
    """The CapabilityStatement.rest.resource entry of AuditEvent."""
    return {
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": "The audit trail: needs an explicit AuditEvent scope; read-only.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {
                "name": name,
                "definition": f"http://hl7.org/fhir/SearchParameter/AuditEvent-{name}",
                "type": kind,
                "documentation": text,
            }
            for name, kind, text in _SEARCH_PARAMS
        ],
    }
