"""Table definitions of the service. Migrations create them; this module describes them.

The resource store, IPT projections, status engine and idempotency tables are here; the
events' tables (outbox, webhooks) are in `_event_tables.py`, and those of the EHR sync, the
audit trail and Bulk Data exports in `_integration_tables.py`, all exported from here too, so
callers import every table from one place.

A test compares these definitions with the database the migrations build, so the two cannot
drift apart.
"""

from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from ipt_core.db._event_tables import (
    event_sequence,
    feed_position,
    outbox,
    webhook_delivery,
    webhook_endpoint,
    webhook_queue,
)
from ipt_core.db._integration_tables import (
    audit_event,
    bulk_export,
    bulk_export_chunk,
    ehr_endpoint,
    ehr_push_item,
    ehr_remote,
    ehr_watermark,
)
from ipt_core.db._metadata import metadata

__all__ = [
    "SEARCH_TABLES",
    "audit_event",
    "bulk_export",
    "bulk_export_chunk",
    "course_status",
    "course_status_history",
    "ehr_endpoint",
    "ehr_push_item",
    "ehr_remote",
    "ehr_watermark",
    "event_sequence",
    "feed_position",
    "idempotency_key",
    "ipt_course",
    "ipt_measure",
    "ipt_session",
    "is_pending",
    "metadata",
    "outbox",
    "recompute_request",
    "resource",
    "resource_version",
    "search_date",
    "search_number",
    "search_reference",
    "search_string",
    "search_token",
    "webhook_delivery",
    "webhook_endpoint",
    "webhook_queue",
]


def _computed_status() -> list[Column[Any]]:
    """A computed status: its version, when, and every field of docs/status-rules.md."""
    types: dict[str, Any] = {
        "version": BigInteger,
        "computed_at": DateTime(timezone=True),
        "status": JSONB,
    }
    return [Column(name, type_, nullable=False) for name, type_ in types.items()]


# The current version of every resource. `content` is the exact JSON served on reads (meta
# included), so a read never parses it; a deleted resource keeps its row with no content.
resource = Table(
    "resource",
    metadata,
    Column("resource_type", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("content", Text),
    PrimaryKeyConstraint("resource_type", "id"),
    Index(None, "resource_type", "last_updated", "id"),
)

# Every version ever written, current ones included. `seq` orders system-wide history.
resource_version = Table(
    "resource_version",
    metadata,
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("resource_type", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("method", Text, nullable=False),
    Column("content", Text),
    PrimaryKeyConstraint("resource_type", "id", "version_id"),
    Index(None, "resource_type", "last_updated", "seq"),
    Index(None, "last_updated", "seq"),
)


def _index_table(name: str, *columns: Column[object], lookup: tuple[str, ...]) -> Table:
    """Define a search-index table: one row per indexed value of a current resource."""
    return Table(
        name,
        metadata,
        Column("resource_type", Text, nullable=False),
        Column("resource_id", Text, nullable=False),
        Column("param", Text, nullable=False),
        *columns,
        Index(None, "resource_type", "resource_id"),
        # Covers resource_id: search's EXISTS probes are index-only (migration 0002).
        Index(None, "resource_type", "param", *lookup, postgresql_include=["resource_id"]),
    )


search_token = _index_table(
    "search_token",
    Column("system", Text),
    Column("code", Text),
    Column("display", Text),
    lookup=("code", "system"),
)
search_string = _index_table(
    "search_string",
    Column("value", Text, nullable=False),  # normalized: lower case, accents removed
    Column("exact", Text, nullable=False),
    lookup=("value",),
)
search_date = _index_table(
    "search_date",
    Column("low", DateTime(timezone=True), nullable=False),
    Column("high", DateTime(timezone=True), nullable=False),
    lookup=("low", "high"),
)
search_reference = _index_table(
    "search_reference",
    Column("target_type", Text),
    Column("target_id", Text, nullable=False),
    lookup=("target_id", "target_type"),
)
search_number = _index_table(
    "search_number",
    Column("value", Numeric, nullable=False),
    Column("system", Text),
    Column("code", Text),
    lookup=("value",),
)

SEARCH_TABLES = (search_token, search_string, search_date, search_reference, search_number)

# -- IPT projections: written by the FHIR store's listeners in the write's own transaction. ----

# One row per IPT course (a CarePlan whose category holds SNOMED 443730003), as stored now.
ipt_course = Table(
    "ipt_course",
    metadata,
    Column("id", Text, primary_key=True),  # the CarePlan id
    Column("patient_id", Text, nullable=False),
    Column("therapist_ref", Text),  # "Practitioner/…" (author), for dashboard filters
    Column("organization_ref", Text),
    Column("status", Text, nullable=False),  # CarePlan.status
    Column("course_type", Text, nullable=False),  # acute | maintenance
    Column("problem_areas", ARRAY(Text), nullable=False),
    Column("planned_sessions", Integer),
    Column("session_minutes", Integer),
    Column("timing", JSONB),  # the IPT activity's scheduledTiming.repeat, for the cadence
    Column("period_start", DateTime(timezone=True)),
    Column("period_end", DateTime(timezone=True)),
    Column("based_on", Text),  # acute course id of a maintenance course
    Column("recurrent", Boolean, nullable=False),  # addresses a Condition coded F33.x
    Column("symptom_goal_id", Text),
    Index(None, "patient_id"),
    Index(None, "based_on"),
    Index(None, "therapist_ref"),
)

# One row per Encounter or Appointment that is an IPT session or may become one (auto-link).
ipt_session = Table(
    "ipt_session",
    metadata,
    Column("resource_type", Text, nullable=False),  # Encounter | Appointment
    Column("resource_id", Text, nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("course_id", Text),  # null when no linking rule applies
    Column("link_reason", Text),  # extension | outcome-reference | auto
    Column("status", Text, nullable=False),  # the resource's own status
    Column("start", DateTime(timezone=True)),
    Column("minutes", Integer),
    Column("appointment_id", Text),  # an Encounter's Appointment: the same session
    Column("is_ipt", Boolean, nullable=False),  # type/serviceType names IPT (auto-link rule)
    PrimaryKeyConstraint("resource_type", "resource_id"),
    Index(None, "course_id"),
    Index(None, "patient_id", "start"),
    Index(None, "appointment_id"),
)

# PHQ-9 totals (and item 9) of every patient; linked to courses by patient and time only.
ipt_measure = Table(
    "ipt_measure",
    metadata,
    Column("observation_id", Text, primary_key=True),
    Column("patient_id", Text, nullable=False),
    Column("code", Text, nullable=False),  # LOINC 44261-6 total | 44260-8 item 9
    Column("status", Text, nullable=False),
    Column("effective", DateTime(timezone=True), nullable=False),
    Column("value", Integer, nullable=False),
    Column("item9", Integer),  # a total's own item-9 component
    Column("members", ARRAY(Text)),  # hasMember ids (a separate item 9)
    Index(None, "patient_id", "effective"),
)

# -- Status engine: recompute requests and computed statuses. ---------------------------------

# One pending request per course: bursts of writes coalesce into one recompute. Workers lease
# rows (claimed_until) in short transactions, so API writes never wait for a computation.
recompute_request = Table(
    "recompute_request",
    metadata,
    Column("course_id", Text, primary_key=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("generation", BigInteger, nullable=False),  # bumped by every new request
    Column("claimed_by", Text),
    Column("claimed_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),  # an error type name; never patient data
    Column("traceparent", Text),  # the trace of the latest write that asked, to continue it
    Index(None, "due_at"),
)


course_status = Table(
    "course_status",
    metadata,
    Column("course_id", Text, primary_key=True),
    *_computed_status(),
    Column("phase", Text, nullable=False),
    Column("engagement", Text),
    Column("next_transition_at", DateTime(timezone=True)),
    Index(None, "phase"),
)

# Every stored status change (migration 0005), written in the transaction that stores
# `course_status`: the history and trends endpoints read it (docs/analytics.md).
course_status_history = Table(
    "course_status_history",
    metadata,
    Column("course_id", Text, nullable=False),
    *_computed_status(),
    Column("cause", Text, nullable=False),  # created | facts | time
    PrimaryKeyConstraint("course_id", "version"),
    Index(None, "computed_at"),
)

# -- Domain API: replayable responses of writes sent with an `Idempotency-Key` header. --------

# One row per (caller, key), written in the transaction of the write it answers: a retry with
# the same body gets the stored response, a reuse with another body is refused.
idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("scope", Text, nullable=False),  # the caller (token subject) the key belongs to
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),  # sha-256 of method, path and parsed body
    Column("status_code", Integer, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("scope", "key"),
    Index(None, "created_at"),
)


def is_pending(status: ColumnElement[Any]) -> ColumnElement[bool]:
    """`status = 'pending'` with the constant in the SQL text, never a bound value.

    The delivery and push queues are found through partial indexes `WHERE status =
    'pending'`. A prepared statement's generic plan (asyncpg reuses statements, PostgreSQL
    switches to the generic plan after five runs) cannot use a partial index whose predicate
    it would have to prove from a parameter: with `status = $1` the webhook delivery loop's
    query scanned every delivery of the endpoint per queue head, 300 ms a call with 5,000 rows
    (docs/architecture.md, "Events, outbox and relay").
    """
    return status == literal_column("'pending'")
