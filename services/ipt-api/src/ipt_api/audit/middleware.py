"""The audit middleware: opens each API request's trail and hands its read records on.

Pure ASGI (no BaseHTTPMiddleware), so the trail's context variable is visible to the
routes, the authorizer and the store's listeners of the same request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipt_api.audit.buffer import AuditBuffer
from ipt_api.audit.trail import AuditTrail, open_trail
from ipt_core.fhir.registry import REGISTRY

__all__ = ["AuditMiddleware"]

_AUDITED = ("/fhir/", "/fhir", "/ipt/v1/")
_UNAUDITED = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})


class AuditMiddleware:
    """Audits every FHIR and domain API request (not probes, metrics or metadata)."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its trail; queue its unrecorded accesses at the end."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(_AUDITED) or path in _UNAUDITED:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        trail = AuditTrail(
            source_address=client[0] if client else None,
            method=scope.get("method", "GET"),
            fallback_type=_fhir_type(path),
        )
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with open_trail(trail):
                await self.app(scope, receive, sending)
        finally:
            records = trail.pending(status)
            buffer: AuditBuffer | None = getattr(scope["app"].state, "audit_buffer", None)
            if records and buffer is not None:
                buffer.add(records)


def _fhir_type(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "fhir" and parts[2] in REGISTRY:
        return parts[2]
    return None
