"""The event relay: one leader publishes the outbox, in order, to the configured publishers.

- `EventRelay` (`RelayTiming`): leadership, LISTEN/NOTIFY wake-ups, batches, retention.
- `build_relay`: the relay the worker's settings describe.
- `replay_to_webhook`, `replay_to_nats`: `ipt events replay`.
"""

from ipt_worker.relay._build import build_relay, delivery_policy, relay_timing
from ipt_worker.relay._relay import LEADER_LOCK, EventRelay, RelayTiming
from ipt_worker.relay._replay import UnknownEndpoint, replay_to_nats, replay_to_webhook

__all__ = [
    "LEADER_LOCK",
    "EventRelay",
    "RelayTiming",
    "UnknownEndpoint",
    "build_relay",
    "delivery_policy",
    "relay_timing",
    "replay_to_nats",
    "replay_to_webhook",
]
