"""The audit part of the edge (ipt_api/edge.py): each API request's trail, opened and settled.

The trail is a context variable set around the request, so the routes, the authorizer and
the store's listeners of the same request reach it; the records it still holds when the
request ends are queued on the app's `AuditBuffer`.
"""

from __future__ import annotations

from starlette.types import Scope

from ipt_api.audit.buffer import AuditBuffer
from ipt_api.audit.trail import AuditTrail
from ipt_core.fhir.registry import REGISTRY

__all__ = ["queue_unrecorded", "request_trail"]

_AUDITED = ("/fhir/", "/fhir", "/ipt/v1/")
_UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})


def request_trail(scope: Scope) -> AuditTrail | None:
    """A new trail for a FHIR or domain API request (not probes, metrics or metadata)."""
    path: str = scope["path"]
    if not path.startswith(_AUDITED) or path in _UNAUDITED:
        return None
    client = scope.get("client")
    return AuditTrail(
        source_address=client[0] if client else None,
        method=scope.get("method", "GET"),
        fallback_type=_fhir_type(path),
    )


def queue_unrecorded(scope: Scope, trail: AuditTrail, status: int) -> None:
    """Queue the records `trail` still holds for a request that ended with `status`."""
    records = trail.pending(status)
    buffer: AuditBuffer | None = getattr(scope["app"].state, "audit_buffer", None)
    if records and buffer is not None:
        buffer.add(records)


def _fhir_type(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "fhir" and parts[2] in REGISTRY:
        return parts[2]
    return None
