"""What the webhook repository hands out and takes: endpoints, due deliveries, outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Attempt", "Delivered", "DeliveryRecord", "DueDelivery", "Endpoint", "Queue"]

Queue = tuple[str, str]  # (endpoint id, partition key): deliveries sent one after the other


@dataclass(frozen=True)
class Endpoint:
    """A subscription as listed: everything but its secret."""

    id: str
    url: str
    event_types: tuple[str, ...]  # empty: every type
    therapist_ref: str | None
    organization_ref: str | None
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime


@dataclass(frozen=True)
class DueDelivery:
    """A delivery to attempt, with what the attempt needs."""

    id: int
    endpoint_id: str
    partition_key: str
    url: str
    secret: str  # sealed
    attempts: int  # attempts made before this one
    next_attempt_at: datetime
    envelope: dict[str, Any]


@dataclass(frozen=True)
class Delivered:
    """A successful attempt, to be recorded (with others, in one statement)."""

    delivery_id: int
    endpoint_id: str
    status_code: int
    at: datetime


@dataclass(frozen=True)
class Attempt:
    """A failed attempt, and when to try again."""

    delivery_id: int
    endpoint_id: str
    partition_key: str
    status_code: int | None  # None: no response
    error: str  # timeout | connect | request | refused | http-<status>
    next_attempt_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    """One row of an endpoint's delivery log."""

    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    partition_key: str
    status: str  # pending | delivered
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
