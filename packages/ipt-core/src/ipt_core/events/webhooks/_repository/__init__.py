"""All SQL of the webhooks family: endpoints, deliveries, disabling (SQLAlchemy Core).

The routes, the relay's fan-out, the delivery loop and replay call these and build no SQL.
"""

from ipt_core.events.webhooks._repository._deliveries import (
    delete_delivered,
    deliveries_of,
    fan_out,
    queue_replay,
    record_delivered,
    record_failure,
    redeliver,
    sendable,
)
from ipt_core.events.webhooks._repository._endpoints import (
    delete_endpoint,
    disable,
    endpoint,
    endpoints,
    insert_endpoint,
    locked_secrets,
    set_enabled,
    set_secret,
)

__all__ = [
    "delete_delivered",
    "delete_endpoint",
    "deliveries_of",
    "disable",
    "endpoint",
    "endpoints",
    "fan_out",
    "insert_endpoint",
    "locked_secrets",
    "queue_replay",
    "record_delivered",
    "record_failure",
    "redeliver",
    "sendable",
    "set_enabled",
    "set_secret",
]
