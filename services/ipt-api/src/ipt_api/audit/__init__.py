"""AuditEvent recording in the API: per-request trails, write records, batched read records."""

from __future__ import annotations

from ipt_api.audit.buffer import AuditBuffer
from ipt_api.audit.listener import AuditWriteListener
from ipt_api.audit.middleware import queue_unrecorded, request_trail
from ipt_api.audit.trail import Access, AuditTrail, current_trail

__all__ = [
    "Access",
    "AuditBuffer",
    "AuditTrail",
    "AuditWriteListener",
    "current_trail",
    "queue_unrecorded",
    "request_trail",
]
