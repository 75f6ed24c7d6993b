"""Events for dashboards: CloudEvents 1.0 envelopes written to the transactional outbox.

- Writing: `cloud_event`, `append_events` (wakes the relay with NOTIFY on commit),
  `next_sequence` / `append_sequenced` (per-course order), `OutboxListener`
  (`fhir.resource.changed` per write).
- Publishing (relay leader only): `publish_oldest` (a batch in one statement: stamped,
  numbered in the feed, its webhook deliveries queued), or `unpublished` (the envelopes, for
  publishers outside the database) then `stamp_published`; `history` (replay).
- Reading: `read_feed` (the ordered feed), `FeedSignal` (LISTEN: wakes waiting readers).
  Retention: `delete_expired_events`.
- All their SQL: `ipt_core.events._repository`. Webhook subscriptions and deliveries:
  `ipt_core.events.webhooks`.
"""

from ipt_core.events._envelope import EVENT_SOURCE, cloud_event
from ipt_core.events._feed_signal import FeedSignal, Wake
from ipt_core.events._listener import OutboxListener, PartitionRule, resource_partition_key
from ipt_core.events._outbox import append_events, append_sequenced, next_sequence
from ipt_core.events._publication import Published, publish_oldest, stamp_published
from ipt_core.events._repository import (
    FEED_CHANNEL,
    OUTBOX_CHANNEL,
    RELAY_ASLEEP_LOCK,
    FeedEntry,
    OutboxEvent,
    any_unpublished,
    delete_expired_events,
    history,
    read_feed,
    unpublished,
)
from ipt_core.events._types import ENDPOINT_DISABLED, EVENT_TYPES, RESOURCE_CHANGED

__all__ = [
    "ENDPOINT_DISABLED",
    "EVENT_SOURCE",
    "EVENT_TYPES",
    "FEED_CHANNEL",
    "OUTBOX_CHANNEL",
    "RELAY_ASLEEP_LOCK",
    "RESOURCE_CHANGED",
    "FeedEntry",
    "FeedSignal",
    "OutboxEvent",
    "OutboxListener",
    "PartitionRule",
    "Published",
    "Wake",
    "any_unpublished",
    "append_events",
    "append_sequenced",
    "cloud_event",
    "delete_expired_events",
    "history",
    "next_sequence",
    "publish_oldest",
    "read_feed",
    "resource_partition_key",
    "stamp_published",
    "unpublished",
]
