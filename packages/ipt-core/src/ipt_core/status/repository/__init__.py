"""The status family's SQL: `course_status` and `course_status_history` (SQLAlchemy Core).

The recompute loop stores through it and the API's status, dashboard and analytics reads
go through it; nothing else builds SQL on these tables (docs/architecture.md). The pure
status core never imports it (the `pure-status-core` import-linter contract).
"""

from ipt_core.status.repository._analytics import (
    current_feed_position,
    history_page,
    status_page,
    trend_rows,
)
from ipt_core.status.repository._current import (
    Cause,
    StatusWrite,
    StoredStatus,
    delete_statuses,
    lock_statuses,
    read_status,
    save_statuses,
    touch_statuses,
)
from ipt_core.status.repository._dashboard import (
    WORKLIST_KINDS,
    CourseScope,
    status_totals,
    worklist_rows,
)

__all__ = [
    "WORKLIST_KINDS",
    "Cause",
    "CourseScope",
    "StatusWrite",
    "StoredStatus",
    "current_feed_position",
    "delete_statuses",
    "history_page",
    "lock_statuses",
    "read_status",
    "save_statuses",
    "status_page",
    "status_totals",
    "touch_statuses",
    "trend_rows",
    "worklist_rows",
]
