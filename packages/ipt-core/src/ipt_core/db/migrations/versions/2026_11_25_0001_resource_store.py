"""Resource store (current resources, versions, search index), IPT projections, status engine."""

import sqlalchemy as sa
from alembic import op

from ipt_core.db.migrations.ddl import columns, index, table

revision: str = "0001"
down_revision: str | None = None

# The search-index tables: their value columns, and the value columns of their lookup index.
_INDEX_COLUMNS: dict[str, tuple[str, list[str]]] = {
    "search_token": ("system text  code text  display text", ["code", "system"]),
    "search_string": ("value text!  exact text!", ["value"]),
    "search_date": ("low tz!  high tz!", ["low", "high"]),
    "search_reference": ("target_type text  target_id text!", ["target_id", "target_type"]),
    "search_number": ("value numeric!  system text  code text", ["value"]),
}


def upgrade() -> None:
    table(
        "resource",
        "resource_type text!  id text!  version_id int!  last_updated tz!  deleted bool!  content text",
        key=["resource_type", "id"],
    )
    index("resource", "resource_type", "last_updated", "id")
    table(
        "resource_version",
        """seq identity  resource_type text!  id text!  version_id int!  last_updated tz!
        method text!  content text""",
        sa.UniqueConstraint("seq", name="uq_resource_version_seq"),
        key=["resource_type", "id", "version_id"],
    )
    index("resource_version", "resource_type", "last_updated", "seq")
    index("resource_version", "last_updated", "seq")
    for name, (value_columns, lookup) in _INDEX_COLUMNS.items():
        op.create_table(
            name, *columns("resource_type text!  resource_id text!  param text!  " + value_columns)
        )
        index(name, "resource_type", "resource_id")
        index(name, "resource_type", "param", *lookup)

    _create_projections()
    _create_status_engine()
    _create_idempotency_keys()
    _create_webhooks()


def _create_projections() -> None:
    table(
        "ipt_course",
        """id text!  patient_id text!  therapist_ref text  organization_ref text  status text!
        course_type text!  problem_areas text[]!  planned_sessions int  session_minutes int
        timing jsonb  period_start tz  period_end tz  based_on text  recurrent bool!
        symptom_goal_id text""",
        key=["id"],
    )
    index("ipt_course", "patient_id")
    index("ipt_course", "based_on")
    index("ipt_course", "therapist_ref")
    table(
        "ipt_session",
        """resource_type text!  resource_id text!  patient_id text!  course_id text
        link_reason text  status text!  start tz  minutes int  appointment_id text
        is_ipt bool!""",
        key=["resource_type", "resource_id"],
    )
    index("ipt_session", "course_id")
    index("ipt_session", "patient_id", "start")
    index("ipt_session", "appointment_id")
    table(
        "ipt_measure",
        """observation_id text!  patient_id text!  code text!  status text!  effective tz!
        value int!  item9 int  members text[]""",
        key=["observation_id"],
    )
    index("ipt_measure", "patient_id", "effective")


def _create_status_engine() -> None:
    table(
        "recompute_request",
        """course_id text!  due_at tz!  generation bigint!  claimed_by text  claimed_until tz
        attempts int!  last_error text  traceparent text""",
        key=["course_id"],
    )
    index("recompute_request", "due_at")
    table(
        "course_status",
        """course_id text!  version bigint!  computed_at tz!  status jsonb!  phase text!
        engagement text  next_transition_at tz""",
        key=["course_id"],
    )
    index("course_status", "phase")
    table(
        "outbox",
        """seq identity  id text!  aggregatetype text!  aggregateid text!  type text!
        payload jsonb!  traceparent text  created_at tz!  published_at tz
        feed_position bigint""",
        sa.UniqueConstraint("id", name="uq_outbox_id"),
        key=["seq"],
    )
    index("outbox", "aggregateid", "seq")
    index("outbox", "created_at")
    index("outbox", "feed_position", unique=True)
    index("outbox", "seq", where="published_at IS NULL", name="ix_outbox_unpublished")
    # Owned by the column, so TRUNCATE … RESTART IDENTITY restarts it too.
    op.execute("CREATE SEQUENCE outbox_feed_position OWNED BY outbox.feed_position")
    table("event_sequence", "aggregateid text!  last bigint!", key=["aggregateid"])


def _create_idempotency_keys() -> None:
    table(
        "idempotency_key",
        """scope text!  key text!  request_hash text!  status_code int!  response jsonb!
        created_at tz!""",
        key=["scope", "key"],
    )
    index("idempotency_key", "created_at")


def _create_webhooks() -> None:
    table(
        "webhook_endpoint",
        """id text!  url text!  secret text!  event_types text[]!  therapist_ref text
        organization_ref text  enabled bool!  disabled_reason text  consecutive_failures int!
        created_at tz!""",
        key=["id"],
    )
    table(
        "webhook_delivery",
        """id identity  endpoint_id text!  event_seq bigint!  event_id text!  event_type text!
        partition_key text!  status text!  attempts int!  next_attempt_at tz!
        last_attempt_at tz  last_status_code int  last_error text  created_at tz!
        delivered_at tz""",
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name="fk_webhook_delivery_endpoint_id_webhook_endpoint",
            ondelete="CASCADE",
        ),
        key=["id"],
    )
    index("webhook_delivery", "endpoint_id", "id")
    index("webhook_delivery", "event_seq")
    pending = "status = 'pending'"
    index("webhook_delivery", "id", where=pending, name="ix_webhook_delivery_pending")
    index(
        "webhook_delivery",
        "endpoint_id",
        "partition_key",
        "id",
        where=pending,
        name="ix_webhook_delivery_queue",
    )


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_endpoint")
    op.drop_table("idempotency_key")
    for table in ("event_sequence", "outbox", "course_status", "recompute_request", "ipt_measure", "ipt_session",
                  "ipt_course"):
        op.drop_table(table)
    for table in reversed(list(_INDEX_COLUMNS)):
        op.drop_table(table)
    op.drop_table("resource_version")
    op.drop_table("resource")
