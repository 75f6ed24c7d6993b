"""AuditEvent: an append-only record of who read or changed patient data."""

import sqlalchemy as sa
from alembic import op

from ipt_core.db.migrations.ddl import index, table

revision: str = "0004"
down_revision: str | None = "0003"

# Audit records are evidence: nothing may rewrite one. Deletion stays possible for the
# retention purge (IPT_AUDIT_RETENTION_DAYS).
_APPEND_ONLY = (
    """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event rows cannot be changed' USING ERRCODE = 'insufficient_privilege';
END $$
""",
    """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
""",
)


def upgrade() -> None:
    table(
        "audit_event",
        """seq identity  id text!  recorded tz!  subtype text!  action text!  outcome int!
        agent text!  client_id text  entity_type text  entity_id text  patient_id text
        content jsonb!""",
        sa.UniqueConstraint("id", name="uq_audit_event_id"),
        key=["seq"],
    )
    index("audit_event", "recorded")
    index("audit_event", "entity_type", "entity_id")
    index("audit_event", "patient_id", "seq")
    index("audit_event", "agent", "seq")
    for statement in _APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_event_append_only ON audit_event")
    op.execute("DROP FUNCTION audit_event_append_only()")
    op.drop_table("audit_event")
