"""The event types dashboards can receive (docs/architecture.md#events-outbox-and-relay)."""

from __future__ import annotations

from typing import Final

__all__ = ["ENDPOINT_DISABLED", "EVENT_TYPES", "RESOURCE_CHANGED"]

RESOURCE_CHANGED: Final = "fhir.resource.changed"
# Emitted when the delivery loop turns a webhook endpoint off (410 Gone, or too many failures).
ENDPOINT_DISABLED: Final = "ipt.webhook.endpoint.disabled"

EVENT_TYPES: Final = frozenset(
    {
        "ipt.course.status.changed",
        "ipt.course.phase.changed",
        "ipt.course.engagement.changed",
        "ipt.course.maintenance.due",
        "ipt.course.completed",
        "ipt.outcome.response",
        "ipt.outcome.remission",
        "ipt.session.recorded",
        RESOURCE_CHANGED,
        ENDPOINT_DISABLED,
    }
)
