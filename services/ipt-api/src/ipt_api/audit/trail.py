"""The audit trail of one request: what the authorizer let it reach, and what it wrote.

The audit middleware opens a trail per request (a context variable, so the authorizer and
the store's write listener reach it without threading it through every call). Records of
writes are inserted by `AuditWriteListener` in the write's own transaction; the request's
other accesses (reads, searches, refusals) are recorded when the request ends: in the write
transaction when it commits, in a transaction of their own after a rollback, or, for reads,
through the batched `AuditBuffer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ipt_api.principal import Principal
from ipt_core.audit import AuditRecord, outcome_of_status
from ipt_core.ids import new_time_ordered_id

__all__ = ["Access", "AuditTrail", "current_trail", "open_trail"]

_WRITES = frozenset({"create", "update", "patch", "delete"})


@dataclass(frozen=True)
class Access:
    """One interaction the authorizer allowed or refused, as the audit names it."""

    interaction: str
    resource_type: str | None
    id: str | None = None
    version_id: int | None = None
    query_names: tuple[str, ...] = ()
    patient_id: str | None = None  # when known as it is noted; else `attach_patient`'s


@dataclass
class AuditTrail:
    """Accesses of one request, and whether they are already recorded."""

    source_address: str | None
    method: str
    fallback_type: str | None = None  # the FHIR type of the URL, for refusals before any check
    principal: Principal | None = None
    accesses: list[Access] = field(default_factory=list)
    # Whose data a noted access of (type, id) reached, once the resource was read.
    patients: dict[tuple[str | None, str | None], str] = field(default_factory=dict)
    written_types: set[str] = field(default_factory=set)
    settled: bool = False

    def note(self, access: Access) -> None:
        """Remember `access` (deduplicated: a transaction may check one type many times)."""
        if access not in self.accesses:
            self.accesses.append(access)

    def attach_patient(self, resource_type: str, id_: str, patient_id: str) -> None:
        """Name the patient whose data the noted access of `resource_type/id_` reached."""
        self.patients[resource_type, id_] = patient_id

    def record(self, access: Access, status: int) -> AuditRecord:
        """The audit record of `access` ended with HTTP `status`."""
        principal = self.principal
        return AuditRecord(
            id=new_time_ordered_id(),
            recorded=datetime.now(UTC),
            interaction=access.interaction,
            outcome=outcome_of_status(status),
            outcome_status=status,
            agent=principal.subject if principal else "anonymous",
            client_id=principal.client_id if principal else None,
            source_address=self.source_address,
            entity_type=access.resource_type,
            entity_id=access.id,
            version_id=access.version_id,
            query_names=access.query_names,
            patient_id=self._patient_of(access),
            patient_scope=principal.compartment or None if principal else None,
        )

    def _patient_of(self, access: Access) -> str | None:
        return access.patient_id or self.patients.get((access.resource_type, access.id))

    def pending(self, status: int) -> list[AuditRecord]:
        """The records still to write for a request that ended with `status`; settles it."""
        if self.settled:
            return []
        self.settled = True
        accesses = [
            a
            for a in self.accesses
            if status >= 400
            or a.interaction not in _WRITES
            or a.resource_type not in self.written_types
        ]
        if not accesses and status in {401, 403}:
            # Refused before any check named the access (no or bad token, no scope at all).
            accesses = [Access(_METHOD_INTERACTION.get(self.method, "read"), self.fallback_type)]
        return [self.record(a, status) for a in accesses]


_METHOD_INTERACTION = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_current: ContextVar[AuditTrail | None] = ContextVar("audit_trail", default=None)


def current_trail() -> AuditTrail | None:
    """The trail of the request being served, if any (None in the worker, tests of core)."""
    return _current.get()


@contextmanager
def open_trail(trail: AuditTrail) -> Iterator[AuditTrail]:
    """Make `trail` the current request's trail for the duration of the block."""
    token = _current.set(trail)
    try:
        yield trail
    finally:
        _current.reset(token)
