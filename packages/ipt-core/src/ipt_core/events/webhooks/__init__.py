"""Webhook subscriptions and their delivery queue (Standard Webhooks signatures).

- Endpoints: `create_endpoint` (returns the `whsec_` secret once), `endpoints`, `endpoint`,
  `set_enabled`, `delete_endpoint`; `disable_endpoint` (delivery loop, emits an event).
- Deliveries: `fan_out` (relay), `due_deliveries` / `record_success` / `record_failure`
  (delivery loop),
  `deliveries_of` / `redeliver` (API), `queue_replay` (`ipt events replay`).
- Signing: `new_secret`, `signature_headers`; secrets are stored sealed (`ipt_core.sealing`):
  `secret_context` is what a secret is bound to, `reseal_secrets` seals legacy rows and
  rotates keys.
"""

from ipt_core.events.webhooks._deliveries import (
    Attempt,
    DeliveryRecord,
    DueDelivery,
    deliveries_of,
    due_deliveries,
    fan_out,
    queue_replay,
    record_failure,
    record_success,
    redeliver,
)
from ipt_core.events.webhooks._disable import disable_endpoint
from ipt_core.events.webhooks._endpoints import (
    Endpoint,
    create_endpoint,
    delete_endpoint,
    endpoint,
    endpoints,
    reseal_secrets,
    secret_context,
    set_enabled,
)
from ipt_core.events.webhooks._signing import new_secret, signature_headers

__all__ = [
    "Attempt",
    "DeliveryRecord",
    "DueDelivery",
    "Endpoint",
    "create_endpoint",
    "delete_endpoint",
    "deliveries_of",
    "disable_endpoint",
    "due_deliveries",
    "endpoint",
    "endpoints",
    "fan_out",
    "new_secret",
    "queue_replay",
    "record_failure",
    "record_success",
    "redeliver",
    "reseal_secrets",
    "secret_context",
    "set_enabled",
    "signature_headers",
]
