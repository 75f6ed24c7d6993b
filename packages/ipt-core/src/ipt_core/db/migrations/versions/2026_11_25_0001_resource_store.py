"""Resource store (current resources, versions, search index), IPT projections, status engine.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX_COLUMNS: dict[str, tuple[list[sa.Column[Any]], list[str]]] = {
    "search_token": (
        [sa.Column("system", sa.Text()), sa.Column("code", sa.Text()), sa.Column("display", sa.Text())],
        ["code", "system"],
    ),
    "search_string": (
        [sa.Column("value", sa.Text(), nullable=False), sa.Column("exact", sa.Text(), nullable=False)],
        ["value"],
    ),
    "search_date": (
        [
            sa.Column("low", sa.DateTime(timezone=True), nullable=False),
            sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        ],
        ["low", "high"],
    ),
    "search_reference": (
        [sa.Column("target_type", sa.Text()), sa.Column("target_id", sa.Text(), nullable=False)],
        ["target_id", "target_type"],
    ),
    "search_number": (
        [
            sa.Column("value", sa.Numeric(), nullable=False),
            sa.Column("system", sa.Text()),
            sa.Column("code", sa.Text()),
        ],
        ["value"],
    ),
}


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_resource"),
    )
    op.create_index(
        "ix_resource_resource_type_last_updated_id", "resource", ["resource_type", "last_updated", "id"]
    )
    op.create_table(
        "resource_version",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id", name="pk_resource_version"),
        sa.UniqueConstraint("seq", name="uq_resource_version_seq"),
    )
    op.create_index(
        "ix_resource_version_resource_type_last_updated_seq",
        "resource_version",
        ["resource_type", "last_updated", "seq"],
    )
    op.create_index("ix_resource_version_last_updated_seq", "resource_version", ["last_updated", "seq"])
    for table, (columns, lookup) in _INDEX_COLUMNS.items():
        op.create_table(
            table,
            sa.Column("resource_type", sa.Text(), nullable=False),
            sa.Column("resource_id", sa.Text(), nullable=False),
            sa.Column("param", sa.Text(), nullable=False),
            *columns,
        )
        op.create_index(f"ix_{table}_resource_type_resource_id", table, ["resource_type", "resource_id"])
        op.create_index(
            f"ix_{table}_resource_type_param_{'_'.join(lookup)}",
            table,
            ["resource_type", "param", *lookup],
        )


    _create_projections()
    _create_status_engine()
    _create_idempotency_keys()
    _create_webhooks()


def _create_projections() -> None:
    op.create_table(
        "ipt_course",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("therapist_ref", sa.Text()),
        sa.Column("organization_ref", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("course_type", sa.Text(), nullable=False),
        sa.Column("problem_areas", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("planned_sessions", sa.Integer()),
        sa.Column("session_minutes", sa.Integer()),
        sa.Column("timing", postgresql.JSONB()),
        sa.Column("period_start", sa.DateTime(timezone=True)),
        sa.Column("period_end", sa.DateTime(timezone=True)),
        sa.Column("based_on", sa.Text()),
        sa.Column("recurrent", sa.Boolean(), nullable=False),
        sa.Column("symptom_goal_id", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_ipt_course"),
    )
    op.create_index("ix_ipt_course_patient_id", "ipt_course", ["patient_id"])
    op.create_index("ix_ipt_course_based_on", "ipt_course", ["based_on"])
    op.create_index("ix_ipt_course_therapist_ref", "ipt_course", ["therapist_ref"])
    op.create_table(
        "ipt_session",
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text()),
        sa.Column("link_reason", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True)),
        sa.Column("minutes", sa.Integer()),
        sa.Column("appointment_id", sa.Text()),
        sa.Column("is_ipt", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", name="pk_ipt_session"),
    )
    op.create_index("ix_ipt_session_course_id", "ipt_session", ["course_id"])
    op.create_index("ix_ipt_session_patient_id_start", "ipt_session", ["patient_id", "start"])
    op.create_index("ix_ipt_session_appointment_id", "ipt_session", ["appointment_id"])
    op.create_table(
        "ipt_measure",
        sa.Column("observation_id", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("effective", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("item9", sa.Integer()),
        sa.Column("members", postgresql.ARRAY(sa.Text())),
        sa.PrimaryKeyConstraint("observation_id", name="pk_ipt_measure"),
    )
    op.create_index("ix_ipt_measure_patient_id_effective", "ipt_measure",
                    ["patient_id", "effective"])


def _create_status_engine() -> None:
    op.create_table(
        "recompute_request",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.Text()),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("traceparent", sa.Text()),
        sa.PrimaryKeyConstraint("course_id", name="pk_recompute_request"),
    )
    op.create_index("ix_recompute_request_due_at", "recompute_request", ["due_at"])
    op.create_table(
        "course_status",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", postgresql.JSONB(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("engagement", sa.Text()),
        sa.Column("next_transition_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("course_id", name="pk_course_status"),
    )
    op.create_index("ix_course_status_phase", "course_status", ["phase"])
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("aggregatetype", sa.Text(), nullable=False),
        sa.Column("aggregateid", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("traceparent", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("feed_position", sa.BigInteger()),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("id", name="uq_outbox_id"),
    )
    op.create_index("ix_outbox_aggregateid_seq", "outbox", ["aggregateid", "seq"])
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])
    op.create_index("ix_outbox_feed_position", "outbox", ["feed_position"], unique=True)
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["seq"], postgresql_where=sa.text("published_at IS NULL")
    )
    # Owned by the column, so TRUNCATE … RESTART IDENTITY restarts it too.
    op.execute("CREATE SEQUENCE outbox_feed_position OWNED BY outbox.feed_position")
    op.create_table(
        "event_sequence",
        sa.Column("aggregateid", sa.Text(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("aggregateid", name="pk_event_sequence"),
    )


def _create_idempotency_keys() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_key"),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])


def _create_webhooks() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("therapist_ref", sa.Text()),
        sa.Column("organization_ref", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoint"),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("partition_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name="fk_webhook_delivery_endpoint_id_webhook_endpoint",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_delivery_endpoint_id_id", "webhook_delivery", ["endpoint_id", "id"])
    op.create_index("ix_webhook_delivery_event_seq", "webhook_delivery", ["event_seq"])
    op.create_index(
        "ix_webhook_delivery_pending",
        "webhook_delivery",
        ["id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_delivery_queue",
        "webhook_delivery",
        ["endpoint_id", "partition_key", "id"],
        postgresql_where=sa.text("status = 'pending'"),
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
