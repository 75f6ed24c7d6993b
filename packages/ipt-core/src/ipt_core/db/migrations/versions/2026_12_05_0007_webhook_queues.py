"""Webhook delivery queues: one row per (endpoint, partition key) with deliveries pending.

The delivery loop claims queues from `webhook_queue` instead of walking the pending
deliveries oldest first, so a long backlog (an endpoint failing for hours, or disabled) no
longer makes every claim slower. The table is filled from the pending deliveries; the walk's
index (`ix_webhook_delivery_pending`) is not needed any more and goes.
"""

import sqlalchemy as sa
from alembic import op

from ipt_core.db.migrations.ddl import index, table

revision: str = "0007"
down_revision: str | None = "0006"

# Each queue's pending count, and its head's next attempt when its endpoint is enabled.
_FILL = """
INSERT INTO webhook_queue (endpoint_id, partition_key, pending, due_at)
SELECT d.endpoint_id, d.partition_key, count(*),
       CASE WHEN bool_and(e.enabled)
            THEN (array_agg(d.next_attempt_at ORDER BY d.id))[1] END
FROM webhook_delivery d JOIN webhook_endpoint e ON e.id = d.endpoint_id
WHERE d.status = 'pending'
GROUP BY d.endpoint_id, d.partition_key
"""


def upgrade() -> None:
    table(
        "webhook_queue",
        "endpoint_id text!  partition_key text!  pending int!  due_at tz",
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name="fk_webhook_queue_endpoint_id_webhook_endpoint",
            ondelete="CASCADE",
        ),
        key=["endpoint_id", "partition_key"],
    )
    index("webhook_queue", "due_at", where="due_at IS NOT NULL", name="ix_webhook_queue_due")
    op.execute(_FILL)
    op.drop_index("ix_webhook_delivery_pending", table_name="webhook_delivery")


def downgrade() -> None:
    pending = "status = 'pending'"
    index("webhook_delivery", "id", where=pending, name="ix_webhook_delivery_pending")
    op.drop_table("webhook_queue")
