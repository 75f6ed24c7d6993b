"""Where the relay publishes events: webhooks, NATS JetStream, the log.

- `Publisher`: the protocol the relay calls inside its batch transaction.
- `WebhookFanOut` queues deliveries; `WebhookDeliverer` sends them (`DeliveryPolicy`:
  timeout, concurrency, backoff, failures before an endpoint is disabled).
- `NatsPublisher`: JetStream, deduplicated by `Nats-Msg-Id`.
- `LogPublisher`: development default; one line per batch: positions and counts per type.
"""

from ipt_worker.publishers._backoff import DeliveryPolicy, retry_after_s, retry_delay_s
from ipt_worker.publishers._delivery import WebhookDeliverer
from ipt_worker.publishers._log import LogPublisher
from ipt_worker.publishers._nats import NatsPublisher
from ipt_worker.publishers._protocol import Publisher
from ipt_worker.publishers._webhooks import WebhookFanOut

__all__ = [
    "DeliveryPolicy",
    "LogPublisher",
    "NatsPublisher",
    "Publisher",
    "WebhookDeliverer",
    "WebhookFanOut",
    "retry_after_s",
    "retry_delay_s",
]
