"""EHR sync: endpoints, push queue, remote ids and pull watermarks (docs/ehr-sync.md)."""

from alembic import op

from ipt_core.db.migrations.ddl import index, table

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    table(
        "ehr_endpoint",
        """name text!  configured bool!  push_types text[]!  accepted_types text[]
        capabilities jsonb  capabilities_at tz  last_push_at tz  last_pull_at tz
        last_error text  last_error_at tz""",
        key=["name"],
    )
    table(
        "ehr_push_item",
        """id identity  endpoint text!  kind text!  resource_type text!  resource_id text!
        status text!  generation bigint!  attempts int!  enqueued_at tz!  due_at tz!
        claimed_until tz  last_error text  operation_outcome jsonb  dead_at tz""",
        key=["id"],
    )
    index("ehr_push_item", "endpoint", "kind", "resource_type", "resource_id", unique=True)
    index(
        "ehr_push_item", "endpoint", "due_at", where="status = 'pending'", name="ix_ehr_push_item_due"
    )
    table(
        "ehr_remote",
        """endpoint text!  resource_type text!  resource_id text!  remote_id text!
        remote_version text  local_version int  direction text!  synced_at tz!""",
        key=["endpoint", "resource_type", "resource_id"],
    )
    index("ehr_remote", "endpoint", "resource_type", "remote_id")
    table(
        "ehr_watermark",
        "endpoint text!  resource_type text!  patient_id text!  watermark text!  updated_at tz!",
        key=["endpoint", "resource_type", "patient_id"],
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
