"""CloudEvents 1.0 envelopes (structured JSON mode).

See docs/architecture.md#events-outbox-and-relay for the attributes and their guarantees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ipt_core.ids import new_time_ordered_id
from ipt_core.instants import format_instant

__all__ = ["EVENT_SOURCE", "cloud_event"]

EVENT_SOURCE = "urn:ipt-care-service"


def cloud_event(
    *,
    type_: str,
    subject: str,
    partition_key: str,
    sequence: int,
    time: datetime,
    data: dict[str, Any],
    traceparent: str | None = None,
) -> dict[str, Any]:
    """Build one event; its `id` is minted here once and kept across every retry."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": new_time_ordered_id(),
        "source": EVENT_SOURCE,
        "type": type_,
        "subject": subject,
        "time": format_instant(time),
        "datacontenttype": "application/json",
        # CloudEvents extension attributes are strings, lower-case names.
        "sequence": f"{sequence:020d}",
        "partitionkey": partition_key,
        "data": data,
    }
    if traceparent:
        event["traceparent"] = traceparent
    return event
