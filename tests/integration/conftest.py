"""Fixtures of the integration tests (the database and app fixtures are in tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.events_support import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A dashboard's webhook endpoint listening on 127.0.0.1 (answers 204 unless told)."""
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()
