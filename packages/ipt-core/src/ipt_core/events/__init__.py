"""Events for dashboards: CloudEvents 1.0 envelopes written to the transactional outbox."""

from ipt_core.events._envelope import EVENT_SOURCE, cloud_event
from ipt_core.events._outbox import append_events, next_sequence

__all__ = ["EVENT_SOURCE", "append_events", "cloud_event", "next_sequence"]
