"""Analytics: status history, and FHIR Bulk Data exports with their NDJSON chunks."""

import sqlalchemy as sa
from alembic import op

from ipt_core.db.migrations.ddl import index, table

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    table(
        "course_status_history",
        "course_id text!  version bigint!  computed_at tz!  status jsonb!  cause text!",
        key=["course_id", "version"],
    )
    index("course_status_history", "computed_at")
    table(
        "bulk_export",
        """id text!  owner text!  level text!  group_id text  types text[]!  since tz
        type_filters jsonb!  request_url text!  state text!  transaction_time tz!
        created_at tz!  completed_at tz  expires_at tz  claimed_by text  claimed_until tz
        type_index int!  after_id text  next_chunk int!  exported bigint!  error text""",
        key=["id"],
    )
    index("bulk_export", "state")
    index("bulk_export", "expires_at")
    table(
        "bulk_export_chunk",
        "export_id text!  chunk int!  resource_type text!  resources int!  data bytes!",
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["bulk_export.id"],
            name="fk_bulk_export_chunk_export_id_bulk_export",
            ondelete="CASCADE",
        ),
        key=["export_id", "chunk"],
    )
    index("bulk_export_chunk", "export_id", "resource_type", "chunk")


def downgrade() -> None:
    op.drop_table("bulk_export_chunk")
    op.drop_table("bulk_export")
    op.drop_table("course_status_history")
