"""Tables of the integrations: EHR sync, the AuditEvent trail, FHIR Bulk Data exports.

Described here, created by migrations 0003-0006; `schema.py` exports them with the others.
"""

import sqlalchemy as sa
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

_TZ = sa.DateTime(timezone=True)  # every instant is stored with its time zone

# -- EHR sync (docs/ehr-sync.md): endpoints, push queue, remote ids, pull watermarks. ---------

# One row per endpoint of IPT_EHR_ENDPOINTS_FILE, written by every process at start; the write
# listener enqueues push work for the configured rows whose accepted types hold the resource.
ehr_endpoint = sa.Table(
    "ehr_endpoint",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("configured", sa.Boolean, nullable=False),  # false: no longer in the endpoints file
    sa.Column("push_types", sa.ARRAY(sa.Text), nullable=False),  # from the file
    sa.Column(
        "accepted_types", sa.ARRAY(sa.Text)
    ),  # of those, what the CapabilityStatement accepts
    sa.Column("capabilities", JSONB),  # summary of the CapabilityStatement last read
    sa.Column("capabilities_at", _TZ),
    sa.Column("last_push_at", _TZ),  # last successful push
    sa.Column("last_pull_at", _TZ),  # last complete pull pass
    sa.Column("last_error", sa.Text),  # an error kind (http-503, timeout, …); never patient data
    sa.Column("last_error_at", _TZ),
)

# Push work: one row per (endpoint, kind, resource), coalescing bursts of writes. Workers lease
# due rows with SKIP LOCKED; a write during a push bumps `generation`, so it is sent again.
ehr_push_item = sa.Table(
    "ehr_push_item",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # resource | course-summary
    sa.Column("resource_type", sa.Text, nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # pending | dead
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("enqueued_at", _TZ, nullable=False),  # for the sync lag
    sa.Column("due_at", _TZ, nullable=False),
    sa.Column("claimed_until", _TZ),
    sa.Column("last_error", sa.Text),  # an error kind; never patient data
    sa.Column("operation_outcome", JSONB),  # the EHR's OperationOutcome of a dead letter
    sa.Column("dead_at", _TZ),
    sa.Index(None, "endpoint", "kind", "resource_type", "resource_id", unique=True),
    sa.Index(
        "ix_ehr_push_item_due", "endpoint", "due_at", postgresql_where=sa.text("status = 'pending'")
    ),
)


def _endpoint_and_type() -> list[sa.Column[str]]:
    """The leading key columns of the per-endpoint, per-resource-type tables."""
    return [
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
    ]


# What each endpoint knows as our resource: its remote id and version (pushed or pulled).
ehr_remote = sa.Table(
    "ehr_remote",
    metadata,
    *_endpoint_and_type(),
    sa.Column("resource_id", sa.Text, nullable=False),  # ours
    sa.Column("remote_id", sa.Text, nullable=False),
    sa.Column("remote_version", sa.Text),  # opaque: integers on one EHR, strings on another
    sa.Column("local_version", sa.Integer),  # our versionId last pushed or pulled
    sa.Column("direction", sa.Text, nullable=False),  # push | pull | match (a matched Patient)
    sa.Column("synced_at", _TZ, nullable=False),
    sa.PrimaryKeyConstraint("endpoint", "resource_type", "resource_id"),
    sa.Index(None, "endpoint", "resource_type", "remote_id"),
)

# Pull watermarks: the greatest remote `meta.lastUpdated` stored, per endpoint, type and patient.
ehr_watermark = sa.Table(
    "ehr_watermark",
    metadata,
    *_endpoint_and_type(),
    sa.Column("patient_id", sa.Text, nullable=False),  # ours
    sa.Column("watermark", sa.Text, nullable=False),  # the EHR's instant, as it wrote it
    sa.Column("updated_at", _TZ, nullable=False),
    sa.PrimaryKeyConstraint("endpoint", "resource_type", "patient_id"),
)

# -- AuditEvent: who read or changed patient data, when, from where, with what outcome. -------

# Append-only (a trigger refuses UPDATE; only the retention purge deletes). A row holds the
# facts of one access, and the FHIR AuditEvent served at /fhir/AuditEvent is rendered from
# them when it is read (ipt_core/audit): one is written per read, and most are never read.
# `content` is the AuditEvent as rendered when written, kept on the rows written before
# migration 0006 (which added the other facts' columns) and served as it is; it is NULL on
# every later row. Searches are recorded with their parameter names only, never values
# (values carry patient data).
audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("recorded", _TZ, nullable=False),
    sa.Column(
        "subtype", sa.Text, nullable=False
    ),  # the FHIR interaction: read, search-type, create…
    sa.Column("action", sa.Text, nullable=False),  # C R U D E
    sa.Column("outcome", sa.Integer, nullable=False),  # 0 success, 4 minor, 8 serious failure
    sa.Column("agent", sa.Text, nullable=False),  # the token's subject (user or system)
    sa.Column("client_id", sa.Text),
    sa.Column("entity_type", sa.Text),
    sa.Column("entity_id", sa.Text),
    sa.Column("patient_id", sa.Text),  # the patient whose data it is, when known
    sa.Column("content", JSONB),  # rows before 0006 only (see above)
    sa.Column("source_address", sa.Text),  # the client's IP address
    sa.Column("version_id", sa.Integer),  # of a vread
    sa.Column("parameter_names", sa.Text),  # of a search, comma-separated
    sa.Column("outcome_status", sa.Integer),  # the HTTP status of a failure
    sa.Index(None, "recorded"),
    sa.Index(None, "entity_type", "entity_id"),
    sa.Index(None, "patient_id", "seq"),
    sa.Index(None, "agent", "seq"),
)

# -- FHIR Bulk Data `$export` (migration 0005; docs/analytics.md). ----------------------------

# One row per kick-off. The worker leases it (claimed_until) and checkpoints its progress
# (type_index, after_id, next_chunk, exported) in the transaction that stores each chunk, so
# a worker killed mid-export is resumed by another from the last stored chunk.
bulk_export = sa.Table(
    "bulk_export",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),  # random, unguessable
    sa.Column("owner", sa.Text, nullable=False),  # the token subject (client) that kicked it off
    sa.Column("level", sa.Text, nullable=False),  # system | patient | group
    sa.Column("group_id", sa.Text),
    sa.Column("types", sa.ARRAY(sa.Text), nullable=False),  # exported in this order
    sa.Column("since", _TZ),
    sa.Column("type_filters", JSONB, nullable=False),  # {type: [query string, …]}
    sa.Column("request_url", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # queued | running | completed | failed
    sa.Column("transaction_time", _TZ, nullable=False),
    sa.Column("created_at", _TZ, nullable=False),
    sa.Column("completed_at", _TZ),
    sa.Column("expires_at", _TZ),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_until", _TZ),
    sa.Column("type_index", sa.Integer, nullable=False),
    sa.Column("after_id", sa.Text),
    sa.Column("next_chunk", sa.Integer, nullable=False),
    sa.Column("exported", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text),  # an error type name; never patient data
    sa.Index(None, "state"),
    sa.Index(None, "expires_at"),
)

# The NDJSON output: each chunk is a run of whole lines of one resource type; a type's file
# is its chunks in `chunk` order, streamed one chunk at a time.
bulk_export_chunk = sa.Table(
    "bulk_export_chunk",
    metadata,
    sa.Column(
        "export_id", sa.Text, sa.ForeignKey("bulk_export.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("resource_type", sa.Text, nullable=False),
    sa.Column("resources", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.PrimaryKeyConstraint("export_id", "chunk"),
    sa.Index(None, "export_id", "resource_type", "chunk"),
)
