"""Events for dashboards: CloudEvents 1.0 envelopes written to the transactional outbox.

- Writing: `cloud_event`, `append_events` (wakes the relay with NOTIFY on commit),
  `next_sequence`, `next_sequences` (per-course order), `OutboxListener`
  (`fhir.resource.changed` per write).
- Publishing (relay leader only): `unpublished`, `mark_published` (feed positions);
  `history` (replay).
- Reading: `read_feed` (the ordered feed), `FeedSignal` (LISTEN: wakes waiting readers).
  Retention: `delete_expired_events`.
- Webhook subscriptions and deliveries: `ipt_core.events.webhooks`.
"""

from ipt_core.events._envelope import EVENT_SOURCE, cloud_event
from ipt_core.events._feed import FeedEntry, read_feed
from ipt_core.events._feed_signal import FeedSignal, Wake
from ipt_core.events._listener import OutboxListener, PartitionRule, resource_partition_key
from ipt_core.events._outbox import (
    OUTBOX_CHANNEL,
    append_events,
    next_sequence,
    next_sequences,
)
from ipt_core.events._publication import (
    FEED_CHANNEL,
    OutboxEvent,
    history,
    mark_published,
    unpublished,
)
from ipt_core.events._retention import delete_expired_events
from ipt_core.events._types import ENDPOINT_DISABLED, EVENT_TYPES, RESOURCE_CHANGED

__all__ = [
    "ENDPOINT_DISABLED",
    "EVENT_SOURCE",
    "EVENT_TYPES",
    "FEED_CHANNEL",
    "OUTBOX_CHANNEL",
    "RESOURCE_CHANGED",
    "FeedEntry",
    "FeedSignal",
    "OutboxEvent",
    "OutboxListener",
    "PartitionRule",
    "Wake",
    "append_events",
    "cloud_event",
    "delete_expired_events",
    "history",
    "mark_published",
    "next_sequence",
    "next_sequences",
    "read_feed",
    "resource_partition_key",
    "unpublished",
]
