"""Where the relay publishes events: webhooks, NATS JetStream, the log.

- `Publisher`: the protocol of publishers outside the database, which the relay hands each
  batch inside its transaction (`NatsPublisher`: JetStream, deduplicated by `Nats-Msg-Id`).
- Webhooks: the relay queues a batch's deliveries in the statement that publishes it;
  `WebhookDeliverer` sends them (`DeliveryPolicy`: timeout, concurrency, backoff, failures
  before an endpoint is disabled).
- `log_batch`: the development default; one line per batch: positions and counts per type.
"""

from ipt_worker.publishers._backoff import DeliveryPolicy, retry_after_s, retry_delay_s
from ipt_worker.publishers._delivery import WebhookDeliverer
from ipt_worker.publishers._log import log_batch
from ipt_worker.publishers._nats import NatsPublisher
from ipt_worker.publishers._protocol import Publisher

__all__ = [
    "DeliveryPolicy",
    "NatsPublisher",
    "Publisher",
    "WebhookDeliverer",
    "log_batch",
    "retry_after_s",
    "retry_delay_s",
]
