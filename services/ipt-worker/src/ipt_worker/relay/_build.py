"""The relay and its publishers, as the worker's settings configure them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import Field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.publishers import DeliveryPolicy, NatsPublisher, Publisher, WebhookDeliverer
from ipt_worker.relay._relay import EventRelay, RelayTiming
from ipt_worker.settings import WorkerSettings

__all__ = ["build_relay", "delivery_policy", "relay_timing"]


def build_relay(
    engine: AsyncEngine, settings: WorkerSettings, clock: Callable[[], datetime]
) -> EventRelay:
    """An `EventRelay` publishing to `settings.event_publishers`."""
    names = set(settings.event_publishers)
    publishers: list[Publisher] = []
    if "nats" in names:
        publishers.append(NatsPublisher(settings.nats_url, settings.nats_stream))
    deliverer = None
    if "webhooks" in names:
        deliverer = WebhookDeliverer(
            engine,
            clock=clock,
            policy=delivery_policy(settings),
            destinations=settings.destination_policy,
            keyring=settings.keyring,
        )
    return EventRelay(
        engine,
        publishers,
        clock=clock,
        timing=relay_timing(settings),
        deliverer=deliverer,
        log_batches="log" in names,
    )


_RELAY_WAITS = ("batch_size", "poll_interval_s", "linger_s", "standby_retry_s", "reconnect_s")


def relay_timing(settings: WorkerSettings) -> RelayTiming:
    """The relay's batch size, waits and retention (`IPT_RELAY_*`, `IPT_EVENT_RETENTION_*`)."""
    return RelayTiming(
        **_prefixed(settings, "relay_", _RELAY_WAITS),
        retention=timedelta(days=settings.event_retention_days),
        retention_interval_s=settings.event_retention_interval_s,
    )


def delivery_policy(settings: WorkerSettings) -> DeliveryPolicy:
    """How webhook deliveries are timed, retried and given up on (`IPT_WEBHOOK_*`)."""
    return DeliveryPolicy(**_prefixed(settings, "webhook_", fields(DeliveryPolicy)))


def _prefixed(
    settings: WorkerSettings, prefix: str, names: Iterable[str | Field[Any]]
) -> dict[str, Any]:
    """The settings `<prefix><name>` by `name`: one spelling of each value, in the settings."""
    keys = [name if isinstance(name, str) else name.name for name in names]
    return {key: getattr(settings, prefix + key) for key in keys}
