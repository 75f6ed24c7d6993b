"""`/ipt/v1/webhooks`: subscriptions, the secret shown once, the delivery log, redelivery."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.integration.events_support import (
    LOOPBACK_ALLOWED,
    WebhookReceiver,
    append_course_events,
    relay_connection,
    running,
    webhook_relay,
)
from tests.support.api import api_settings
from tests.support.waiting import poll_until

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")

URL = "https://dashboards.example/hooks"


@pytest.fixture
async def app(db: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The app with the test receivers' loopback address on IPT_OUTBOUND_ALLOW."""
    application = create_app(api_settings(outbound_allow=LOOPBACK_ALLOWED), database=Database(db))
    async with LifespanManager(application):
        yield application


async def test_the_secret_is_returned_once(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/ipt/v1/webhooks",
        json={
            "url": URL,
            "event_types": ["ipt.course.phase.changed"],
            "therapist": "Practitioner/t1",
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    assert body["enabled"] is True
    assert body["therapist"] == "Practitioner/t1"
    listed = (await client.get("/ipt/v1/webhooks")).json()
    read = (await client.get(f"/ipt/v1/webhooks/{body['id']}")).json()
    assert [hook["id"] for hook in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in read
    assert read["event_types"] == ["ipt.course.phase.changed"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://dashboards.example/"},
        {"url": URL, "event_types": ["ipt.no.such.event"]},
        {"url": URL, "therapist": "Patient/1"},
        {"url": URL, "colour": "blue"},
    ],
)
async def test_bad_subscriptions_are_refused(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post("/ipt/v1/webhooks", json=body)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_enable_disable_and_delete(client: httpx.AsyncClient) -> None:
    hook = (await client.post("/ipt/v1/webhooks", json={"url": URL})).json()
    path = f"/ipt/v1/webhooks/{hook['id']}"
    disabled = (await client.patch(path, json={"enabled": False})).json()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "manual")
    enabled = (await client.patch(path, json={"enabled": True})).json()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)
    assert (await client.delete(path)).status_code == 204
    assert (await client.get(path)).status_code == 404
    assert (await client.delete(path)).status_code == 404
    assert (await client.patch(path, json={"enabled": True})).status_code == 404


async def test_delivery_log_and_redelivery_with_the_same_event_id(
    db: AsyncEngine, client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    hook = (await client.post("/ipt/v1/webhooks", json={"url": receiver.url})).json()
    receiver.secret = hook["secret"]
    path = f"/ipt/v1/webhooks/{hook['id']}/deliveries"
    async with running(webhook_relay(db)):
        sent = await append_course_events(db, ["c1"], 3)
        await poll_until(lambda: _delivered(db, 3), what="deliveries recorded")
        log = (await client.get(path, params={"limit": 2})).json()
        assert [d["event_id"] for d in log["deliveries"]] == [sent[2]["id"], sent[1]["id"]]
        assert log["deliveries"][0]["status"] == "delivered"
        assert log["deliveries"][0]["last_status_code"] == 204
        older = (await client.get(path, params={"before": log["next_before"]})).json()
        assert [d["event_id"] for d in older["deliveries"]] == [sent[0]["id"]]
        first = older["deliveries"][0]["id"]
        again = await client.post(f"{path}/{first}/redeliver")
        assert again.status_code == 202
        assert again.json()["status"] == "pending"
        await poll_until(lambda: len(receiver.accepted()) == 4)
    assert receiver.accepted()[-1]["id"] == sent[0]["id"]
    assert all(receipt.signature_ok for receipt in receiver.receipts)
    assert (await client.post(f"{path}/999999/redeliver")).status_code == 404
    assert (await client.get("/ipt/v1/webhooks/nope/deliveries")).status_code == 404


async def test_deleting_a_subscription_drops_its_queue(
    db: AsyncEngine, client: httpx.AsyncClient
) -> None:
    hook = (await client.post("/ipt/v1/webhooks", json={"url": URL})).json()
    await append_course_events(db, ["c1"], 2)
    async with relay_connection(db) as conn:
        await webhook_relay(db).publish_batch(conn)
        queued = await conn.scalar(text("SELECT count(*) FROM webhook_delivery"))
    assert queued == 2
    await client.delete(f"/ipt/v1/webhooks/{hook['id']}")
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM webhook_delivery")) == 0


async def _delivered(db: AsyncEngine, count: int) -> bool:
    async with db.connect() as conn:
        delivered = await conn.scalar(
            text("SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'")
        )
    return bool(delivered == count)
