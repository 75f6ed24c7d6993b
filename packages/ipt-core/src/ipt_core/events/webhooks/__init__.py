"""Webhook subscriptions and their delivery queue (Standard Webhooks signatures).

- Endpoints: `create_endpoint` (returns the `whsec_` secret once), `endpoints`, `endpoint`,
  `set_enabled`, `delete_endpoint`; `disable_endpoint` (delivery loop, emits an event).
- Deliveries: `fanned_out` (part of the relay's batch statement; it notifies
  `DELIVERY_CHANNEL`), `lock_sendable` / `queued` /
  `unlock` (a `Queue` at a time per process), `record_delivered` (many at once) /
  `record_failure` and `hold` (delivery loop), `deliveries_of` / `redeliver` (API),
  `queue_replay` (`ipt events replay`), `delete_delivered` and `reconcile` (retention).
  Each keeps the queue table (`webhook_queue`) in step with what it changes.
- Signing: `new_secret`, `signature_headers`; secrets are stored sealed (`ipt_core.sealing`):
  `secret_context` is what a secret is bound to, `reseal_secrets` seals legacy rows and
  rotates keys.
- All their SQL: `ipt_core.events.webhooks._repository` (`endpoints`, `deliveries`,
  `queues`, `queue_table`).
"""

from ipt_core.events.webhooks._disable import disable_endpoint
from ipt_core.events.webhooks._endpoints import create_endpoint, reseal_secrets, secret_context
from ipt_core.events.webhooks._model import (
    Attempt,
    Delivered,
    DeliveryRecord,
    DueDelivery,
    Endpoint,
    Queue,
)
from ipt_core.events.webhooks._repository.deliveries import (
    DELIVERY_CHANNEL,
    delete_delivered,
    deliveries_of,
    fanned_out,
    queue_replay,
    record_delivered,
    record_failure,
    redeliver,
)
from ipt_core.events.webhooks._repository.endpoints import (
    delete_endpoint,
    endpoint,
    endpoints,
    set_enabled,
)
from ipt_core.events.webhooks._repository.queue_table import drop_empty, hold, reconcile
from ipt_core.events.webhooks._repository.queues import (
    QUEUE_LOCKS,
    lock_sendable,
    plan_each_claim,
    queued,
    unlock,
)
from ipt_core.events.webhooks._signing import new_secret, signature_headers

__all__ = [
    "DELIVERY_CHANNEL",
    "QUEUE_LOCKS",
    "Attempt",
    "Delivered",
    "DeliveryRecord",
    "DueDelivery",
    "Endpoint",
    "Queue",
    "create_endpoint",
    "delete_delivered",
    "delete_endpoint",
    "deliveries_of",
    "disable_endpoint",
    "drop_empty",
    "endpoint",
    "endpoints",
    "fanned_out",
    "hold",
    "lock_sendable",
    "new_secret",
    "plan_each_claim",
    "queue_replay",
    "queued",
    "reconcile",
    "record_delivered",
    "record_failure",
    "redeliver",
    "reseal_secrets",
    "secret_context",
    "set_enabled",
    "signature_headers",
    "unlock",
]
