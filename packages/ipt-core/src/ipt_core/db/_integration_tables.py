"""Tables of the integrations: EHR sync, the AuditEvent trail, FHIR Bulk Data exports.

Described here, created by migrations 0003-0005; `schema.py` exports them with the others.
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from ipt_core.db._metadata import metadata

__all__ = [
    "audit_event",
    "bulk_export",
    "bulk_export_chunk",
    "ehr_endpoint",
    "ehr_push_item",
    "ehr_remote",
    "ehr_watermark",
]

# -- EHR sync (docs/ehr-sync.md): endpoints, push queue, remote ids, pull watermarks. ---------

# One row per endpoint of IPT_EHR_ENDPOINTS_FILE, written by every process at start; the write
# listener enqueues push work for the configured rows whose accepted types hold the resource.
ehr_endpoint = Table(
    "ehr_endpoint",
    metadata,
    Column("name", Text, primary_key=True),
    Column("configured", Boolean, nullable=False),  # false: no longer in the endpoints file
    Column("push_types", ARRAY(Text), nullable=False),  # from the file
    Column("accepted_types", ARRAY(Text)),  # of those, what the CapabilityStatement accepts
    Column("capabilities", JSONB),  # summary of the CapabilityStatement last read
    Column("capabilities_at", DateTime(timezone=True)),
    Column("last_push_at", DateTime(timezone=True)),  # last successful push
    Column("last_pull_at", DateTime(timezone=True)),  # last complete pull pass
    Column("last_error", Text),  # an error kind (http-503, timeout, …); never patient data
    Column("last_error_at", DateTime(timezone=True)),
)

# Push work: one row per (endpoint, kind, resource), coalescing bursts of writes. Workers lease
# due rows with SKIP LOCKED; a write during a push bumps `generation`, so it is sent again.
ehr_push_item = Table(
    "ehr_push_item",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("endpoint", Text, nullable=False),
    Column("kind", Text, nullable=False),  # resource | course-summary
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | dead
    Column("generation", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),  # for the sync lag
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True)),
    Column("last_error", Text),  # an error kind; never patient data
    Column("operation_outcome", JSONB),  # the EHR's OperationOutcome of a dead letter
    Column("dead_at", DateTime(timezone=True)),
    Index(None, "endpoint", "kind", "resource_type", "resource_id", unique=True),
    Index(
        "ix_ehr_push_item_due", "endpoint", "due_at", postgresql_where=text("status = 'pending'")
    ),
)

# What each endpoint knows as our resource: its remote id and version (pushed or pulled).
ehr_remote = Table(
    "ehr_remote",
    metadata,
    Column("endpoint", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),  # ours
    Column("remote_id", Text, nullable=False),
    Column("remote_version", Text),  # opaque: integers on one EHR, strings on another
    Column("local_version", Integer),  # our versionId last pushed or pulled
    Column("direction", Text, nullable=False),  # push | pull | match (a matched Patient)
    Column("synced_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("endpoint", "resource_type", "resource_id"),
    Index(None, "endpoint", "resource_type", "remote_id"),
)

# Pull watermarks: the greatest remote `meta.lastUpdated` stored, per endpoint, type and patient.
ehr_watermark = Table(
    "ehr_watermark",
    metadata,
    Column("endpoint", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("patient_id", Text, nullable=False),  # ours
    Column("watermark", Text, nullable=False),  # the EHR's instant, as it wrote it
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("endpoint", "resource_type", "patient_id"),
)

# -- AuditEvent: who read or changed patient data, when, from where, with what outcome. -------

# Append-only (a trigger refuses UPDATE; only the retention purge deletes). `content` is the
# FHIR AuditEvent served at /fhir/AuditEvent; the other columns are its search keys. Searches
# are recorded with their parameter names only, never values (values carry patient data).
audit_event = Table(
    "audit_event",
    metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("id", Text, nullable=False, unique=True),
    Column("recorded", DateTime(timezone=True), nullable=False),
    Column("subtype", Text, nullable=False),  # the FHIR interaction: read, search-type, create…
    Column("action", Text, nullable=False),  # C R U D E
    Column("outcome", Integer, nullable=False),  # 0 success, 4 minor, 8 serious failure
    Column("agent", Text, nullable=False),  # the token's subject (user or system)
    Column("client_id", Text),
    Column("entity_type", Text),
    Column("entity_id", Text),
    Column("patient_id", Text),  # the patient whose data it is, when known
    Column("content", JSONB, nullable=False),
    Index(None, "recorded"),
    Index(None, "entity_type", "entity_id"),
    Index(None, "patient_id", "seq"),
    Index(None, "agent", "seq"),
)

# -- FHIR Bulk Data `$export` (migration 0005; docs/analytics.md). ----------------------------

# One row per kick-off. The worker leases it (claimed_until) and checkpoints its progress
# (type_index, after_id, next_chunk, exported) in the transaction that stores each chunk, so
# a worker killed mid-export is resumed by another from the last stored chunk.
bulk_export = Table(
    "bulk_export",
    metadata,
    Column("id", Text, primary_key=True),  # random, unguessable
    Column("owner", Text, nullable=False),  # the token subject (client) that kicked it off
    Column("level", Text, nullable=False),  # system | patient | group
    Column("group_id", Text),
    Column("types", ARRAY(Text), nullable=False),  # exported in this order
    Column("since", DateTime(timezone=True)),
    Column("type_filters", JSONB, nullable=False),  # {type: [query string, …]}
    Column("request_url", Text, nullable=False),
    Column("state", Text, nullable=False),  # queued | running | completed | failed
    Column("transaction_time", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("claimed_by", Text),
    Column("claimed_until", DateTime(timezone=True)),
    Column("type_index", Integer, nullable=False),
    Column("after_id", Text),
    Column("next_chunk", Integer, nullable=False),
    Column("exported", BigInteger, nullable=False),
    Column("error", Text),  # an error type name; never patient data
    Index(None, "state"),
    Index(None, "expires_at"),
)

# The NDJSON output: each chunk is a run of whole lines of one resource type; a type's file
# is its chunks in `chunk` order, streamed one chunk at a time.
bulk_export_chunk = Table(
    "bulk_export_chunk",
    metadata,
    Column("export_id", Text, ForeignKey("bulk_export.id", ondelete="CASCADE"), nullable=False),
    Column("chunk", Integer, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("resources", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("export_id", "chunk"),
    Index(None, "export_id", "resource_type", "chunk"),
)
