"""Webhook retry timing: exponential backoff with jitter, Retry-After, signatures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook

from ipt_core.events.webhooks import new_secret, signature_headers
from ipt_worker.publishers import DeliveryPolicy, retry_after_s, retry_delay_s

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
POLICY = DeliveryPolicy(backoff_initial_s=1, backoff_max_s=60)


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60)])
def test_backoff_doubles_up_to_the_maximum_with_jitter(attempts: int, ceiling: float) -> None:
    rng = random.Random(7)
    delays = [retry_delay_s(POLICY, attempts, None, rng) for _ in range(200)]
    assert min(delays) >= ceiling / 2
    assert max(delays) <= ceiling
    assert len(set(delays)) > 100  # jittered, not synchronized


def test_retry_after_wins_over_backoff() -> None:
    assert retry_delay_s(POLICY, 1, 120.0, random.Random()) == 120.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_header_forms(header: str | None, expected: float | None) -> None:
    assert retry_after_s(header, NOW) == expected


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    body = b'{"id":"e1","type":"ipt.course.completed"}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signature_headers(secret, "e1", timestamp, body)
    assert Webhook(secret).verify(body, headers) == {"id": "e1", "type": "ipt.course.completed"}
