"""AuditEvent facts: the trail stores each access's facts and renders the AuditEvent on read.

Adds the facts the rendered AuditEvent held beyond the search columns; `content` becomes
optional: rows written before keep the AuditEvent rendered then, later rows store none.
Both statements change the catalog only (no table rewrite, no backfill), so the upgrade is
instant on a trail of any size.
"""

import sqlalchemy as sa
from alembic import op

from ipt_core.db.migrations.ddl import columns

revision: str = "0006"
down_revision: str | None = "0005"

_FACTS = "source_address text  version_id int  parameter_names text  outcome_status int"

# Going back would leave rows no earlier version can serve (no content): refused while any
# exists, rather than deleting evidence or rendering it a second way in SQL.
_REFUSE_IF_RENDERED_ON_READ = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM audit_event WHERE content IS NULL) THEN
        RAISE EXCEPTION 'audit_event holds records stored as facts only; '
            'a version before 0006 cannot serve them (export the trail, then purge it)';
    END IF;
END $$
"""


def upgrade() -> None:
    for column in columns(_FACTS):
        op.add_column("audit_event", column)
    op.alter_column("audit_event", "content", nullable=True)


def downgrade() -> None:
    op.execute(_REFUSE_IF_RENDERED_ON_READ)
    op.alter_column("audit_event", "content", nullable=False)
    for column in columns(_FACTS):
        op.drop_column("audit_event", column.name)
