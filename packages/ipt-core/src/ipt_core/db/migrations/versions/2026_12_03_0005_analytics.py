"""Analytics: status history, and FHIR Bulk Data exports with their NDJSON chunks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "course_status_history",
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", postgresql.JSONB(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "version", name="pk_course_status_history"),
    )
    op.create_index(
        "ix_course_status_history_computed_at", "course_status_history", ["computed_at"]
    )
    op.create_table(
        "bulk_export",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("group_id", sa.Text()),
        sa.Column("types", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("type_filters", postgresql.JSONB(), nullable=False),
        sa.Column("request_url", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("transaction_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_by", sa.Text()),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("type_index", sa.Integer(), nullable=False),
        sa.Column("after_id", sa.Text()),
        sa.Column("next_chunk", sa.Integer(), nullable=False),
        sa.Column("exported", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_bulk_export"),
    )
    op.create_index("ix_bulk_export_state", "bulk_export", ["state"])
    op.create_index("ix_bulk_export_expires_at", "bulk_export", ["expires_at"])
    op.create_table(
        "bulk_export_chunk",
        sa.Column("export_id", sa.Text(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resources", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["bulk_export.id"],
            name="fk_bulk_export_chunk_export_id_bulk_export",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("export_id", "chunk", name="pk_bulk_export_chunk"),
    )
    op.create_index(
        "ix_bulk_export_chunk_export_id_resource_type_chunk",
        "bulk_export_chunk",
        ["export_id", "resource_type", "chunk"],
    )


def downgrade() -> None:
    op.drop_table("bulk_export_chunk")
    op.drop_table("bulk_export")
    op.drop_table("course_status_history")
