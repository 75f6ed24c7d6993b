"""The relay and its publishers, as the worker's settings configure them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.publishers import (
    DeliveryPolicy,
    LogPublisher,
    NatsPublisher,
    Publisher,
    WebhookDeliverer,
    WebhookFanOut,
)
from ipt_worker.relay._relay import EventRelay, RelayTiming
from ipt_worker.settings import WorkerSettings

__all__ = ["build_relay", "delivery_policy", "relay_timing"]


def build_relay(
    engine: AsyncEngine, settings: WorkerSettings, clock: Callable[[], datetime]
) -> EventRelay:
    """An `EventRelay` publishing to `settings.event_publishers`, in that order."""
    publishers: list[Publisher] = []
    deliverer = None
    for name in dict.fromkeys(settings.event_publishers):
        if name == "log":
            publishers.append(LogPublisher())
        elif name == "webhooks":
            publishers.append(WebhookFanOut(clock))
            deliverer = WebhookDeliverer(
                engine,
                clock=clock,
                policy=delivery_policy(settings),
                destinations=settings.destination_policy,
                keyring=settings.keyring,
            )
        else:
            publishers.append(NatsPublisher(settings.nats_url, settings.nats_stream))
    return EventRelay(
        engine, publishers, clock=clock, timing=relay_timing(settings), deliverer=deliverer
    )


def relay_timing(settings: WorkerSettings) -> RelayTiming:
    """The relay's batch size, waits and retention."""
    return RelayTiming(
        batch_size=settings.relay_batch_size,
        poll_interval_s=settings.relay_poll_interval_s,
        standby_retry_s=settings.relay_standby_retry_s,
        reconnect_s=settings.relay_reconnect_s,
        retention=timedelta(days=settings.event_retention_days),
        retention_interval_s=settings.event_retention_interval_s,
    )


def delivery_policy(settings: WorkerSettings) -> DeliveryPolicy:
    """How webhook deliveries are timed, retried and given up on."""
    return DeliveryPolicy(
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        backoff_initial_s=settings.webhook_backoff_initial_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        max_failures=settings.webhook_max_failures,
        poll_interval_s=settings.webhook_poll_interval_s,
    )
