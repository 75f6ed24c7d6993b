"""Webhooks: internal destinations refused (registration and delivery), no userinfo echoed,
secrets sealed at rest (and legacy plain rows sealed by `reseal_secrets`).
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.events import webhooks
from ipt_core.sealing import Keyring, is_sealed, new_key
from tests.integration.events_support import (
    TEST_KEYRING,
    WebhookReceiver,
    append_course_events,
    running,
    subscribe,
    webhook_relay,
)
from tests.support.clock import utc_now
from tests.support.waiting import poll_until


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://localhost:6379/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
async def test_internal_destinations_are_refused_at_registration(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post("/ipt/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "IPT_OUTBOUND_ALLOW" in outcome["issue"][0]["diagnostics"]
    assert (await client.get("/ipt/v1/webhooks")).json() == []


async def test_userinfo_is_refused_and_never_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ipt/v1/webhooks", json={"url": "https://robot:hunter2@dashboards.example/hooks"}
    )
    assert response.status_code == 422
    assert "hunter2" not in response.text


async def test_legacy_userinfo_urls_are_redacted_in_listings(
    db: AsyncEngine, client: httpx.AsyncClient
) -> None:
    async with db.begin() as conn:
        await webhooks.create_endpoint(
            conn, url="https://robot:hunter2@dashboards.example/hooks", event_types=[],
            therapist_ref=None, organization_ref=None, now=utc_now(), keyring=TEST_KEYRING,
        )  # fmt: skip
    listing = await client.get("/ipt/v1/webhooks")
    assert "hunter2" not in listing.text
    assert "robot" not in listing.text
    assert listing.json()[0]["url"] == "https://dashboards.example/hooks"


async def test_secrets_are_sealed_at_rest(db: AsyncEngine, client: httpx.AsyncClient) -> None:
    created = (
        await client.post("/ipt/v1/webhooks", json={"url": "https://dashboards.example/h"})
    ).json()
    async with db.connect() as conn:
        stored = await conn.scalar(text("SELECT secret FROM webhook_endpoint"))
    assert created["secret"].startswith("whsec_")
    assert created["secret"] not in stored
    assert is_sealed(stored)
    context = webhooks.secret_context(created["id"])
    assert TEST_KEYRING.open(stored, context=context) == created["secret"]
    with pytest.raises(Exception, match="does not open"):
        TEST_KEYRING.open(stored, context=webhooks.secret_context("another-endpoint"))


async def test_reseal_seals_legacy_rows_and_rotates_keys(db: AsyncEngine) -> None:
    legacy = "whsec_" + "B" * 43 + "="
    async with db.begin() as conn:
        endpoint, _ = await webhooks.create_endpoint(
            conn, url="https://dashboards.example/h", event_types=[], therapist_ref=None,
            organization_ref=None, now=utc_now(), keyring=TEST_KEYRING,
        )  # fmt: skip
        await conn.execute(text("UPDATE webhook_endpoint SET secret = :s"), {"s": legacy})
    rotated = Keyring.parse(new_key("next") + "," + "test1:" + "A" * 43 + "=")
    async with db.begin() as conn:
        assert await webhooks.reseal_secrets(conn, rotated) == 1
        assert await webhooks.reseal_secrets(conn, rotated) == 0  # idempotent
        stored = await conn.scalar(text("SELECT secret FROM webhook_endpoint"))
    assert stored.startswith("ipt-sealed:v1:next:")
    assert rotated.open(stored, context=webhooks.secret_context(endpoint.id)) == legacy


async def test_deliveries_to_refused_destinations_never_connect(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    # Registered when it was allowed (or through DNS that changed since): refused at connect.
    await subscribe(db, receiver)
    async with running(webhook_relay(db, allow=())):
        await append_course_events(db, ["course-a"], 1)
        await poll_until(lambda: _last_error(db, "refused"), what="a refused attempt")
    assert receiver.receipts == []  # no request reached the listening port


async def test_closed_and_open_internal_ports_look_the_same(db: AsyncEngine) -> None:
    # A port scanner would tell these apart by the delivery log: both read "refused".
    for port in (1, 5432):
        async with db.begin() as conn:
            await webhooks.create_endpoint(
                conn, url=f"http://127.0.0.1:{port}/", event_types=[], therapist_ref=None,
                organization_ref=None, now=utc_now(), keyring=TEST_KEYRING,
            )  # fmt: skip
    async with running(webhook_relay(db, allow=())):
        await append_course_events(db, ["course-a"], 1)
        await poll_until(lambda: _all_refused(db, 2), what="both refused")


async def _last_error(db: AsyncEngine, error: str) -> bool:
    async with db.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM webhook_delivery WHERE last_error = :e"), {"e": error}
        )
    return bool(found)


async def _all_refused(db: AsyncEngine, count: int) -> bool:
    async with db.connect() as conn:
        errors = list(await conn.scalars(text("SELECT last_error FROM webhook_delivery")))
    return len(errors) == count and set(errors) == {"refused"}
