"""EHR sync: endpoints, push queue, remote ids and pull watermarks (docs/ehr-sync.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ehr_endpoint",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("configured", sa.Boolean(), nullable=False),
        sa.Column("push_types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("accepted_types", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("capabilities", postgresql.JSONB(), nullable=True),
        sa.Column("capabilities_at", _TZ, nullable=True),
        sa.Column("last_push_at", _TZ, nullable=True),
        sa.Column("last_pull_at", _TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_ehr_endpoint"),
    )
    op.create_table(
        "ehr_push_item",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", _TZ, nullable=False),
        sa.Column("due_at", _TZ, nullable=False),
        sa.Column("claimed_until", _TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("operation_outcome", postgresql.JSONB(), nullable=True),
        sa.Column("dead_at", _TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ehr_push_item"),
    )
    op.create_index(
        "ix_ehr_push_item_endpoint_kind_resource_type_resource_id",
        "ehr_push_item",
        ["endpoint", "kind", "resource_type", "resource_id"],
        unique=True,
    )
    op.create_index(
        "ix_ehr_push_item_due",
        "ehr_push_item",
        ["endpoint", "due_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "ehr_remote",
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.Column("remote_version", sa.Text(), nullable=True),
        sa.Column("local_version", sa.Integer(), nullable=True),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("synced_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint(
            "endpoint", "resource_type", "resource_id", name="pk_ehr_remote"
        ),
    )
    op.create_index(
        "ix_ehr_remote_endpoint_resource_type_remote_id",
        "ehr_remote",
        ["endpoint", "resource_type", "remote_id"],
    )
    op.create_table(
        "ehr_watermark",
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint(
            "endpoint", "resource_type", "patient_id", name="pk_ehr_watermark"
        ),
    )


def downgrade() -> None:
    op.drop_table("ehr_watermark")
    op.drop_index("ix_ehr_remote_endpoint_resource_type_remote_id", table_name="ehr_remote")
    op.drop_table("ehr_remote")
    op.drop_index("ix_ehr_push_item_due", table_name="ehr_push_item")
    op.drop_index(
        "ix_ehr_push_item_endpoint_kind_resource_type_resource_id", table_name="ehr_push_item"
    )
    op.drop_table("ehr_push_item")
    op.drop_table("ehr_endpoint")
