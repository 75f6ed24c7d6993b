"""AuditEvent: append-only records of who read or changed patient data (FHIR R4 AuditEvent).

AuditRecord, INTERACTIONS          one access, and the (subtype, action) of each interaction
audit_event_json(record)            the AuditEvent served at /fhir/AuditEvent (rendered on read)
insert_records / copy_records   append records (in a write's transaction / batched by COPY)
read_record / search_records / purge_before   the rest of the SQL of `audit_event`
"""

from __future__ import annotations

from ipt_core.audit._model import (
    INTERACTIONS,
    SOURCE_OBSERVER,
    AuditRecord,
    audit_event_json,
    outcome_of_status,
)
from ipt_core.audit._repository import (
    AuditFilter,
    copy_records,
    insert_records,
    purge_before,
    read_record,
    records_part,
    search_records,
)

__all__ = [
    "INTERACTIONS",
    "SOURCE_OBSERVER",
    "AuditFilter",
    "AuditRecord",
    "audit_event_json",
    "copy_records",
    "insert_records",
    "outcome_of_status",
    "purge_before",
    "read_record",
    "records_part",
    "search_records",
]
