"""`ipt events replay`: history re-sent to a webhook endpoint with the original event ids."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.cli import main
from ipt_worker.relay import UnknownEndpoint, replay_to_webhook
from tests.integration.events_support import (
    WebhookReceiver,
    append_course_events,
    assert_in_order_per_course,
    running,
    subscribe,
    webhook_relay,
)
from tests.support.clock import utc_now
from tests.support.waiting import poll_until

# Each test ends with the queue table matching the deliveries.
pytestmark = pytest.mark.usefixtures("queues_checked")


async def test_replay_sends_history_again_in_order(
    db: AsyncEngine, receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(db, receiver)
    async with running(webhook_relay(db)):
        sent = await append_course_events(db, ["c1", "c2"], 3)
        await poll_until(lambda: len(receiver.accepted()) == len(sent))
        queued = await replay_to_webhook(
            db, endpoint_id, since=utc_now() - timedelta(minutes=1), until=utc_now(), clock=utc_now
        )
        await poll_until(lambda: len(receiver.accepted()) == 2 * len(sent))
    assert queued == len(sent)
    replayed = receiver.accepted()[len(sent) :]
    assert sorted(e["id"] for e in replayed) == sorted(e["id"] for e in sent)
    assert_in_order_per_course(replayed)
    assert all(receipt.signature_ok for receipt in receiver.receipts)


async def test_replay_to_an_unknown_endpoint_is_refused(db: AsyncEngine) -> None:
    with pytest.raises(UnknownEndpoint):
        await replay_to_webhook(db, "nope", since=utc_now(), until=utc_now(), clock=utc_now)


async def test_the_command_queues_the_replay(
    db: AsyncEngine, database_url: str, receiver: WebhookReceiver
) -> None:
    endpoint_id = await subscribe(db, receiver)
    await append_course_events(db, ["c1"], 2)
    since = (utc_now() - timedelta(minutes=5)).isoformat()
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    result = await asyncio.to_thread(
        runner.invoke, main, ["events", "replay", "--since", since, "--to", endpoint_id], env=env
    )
    assert result.exit_code == 0, result.output
    assert "2 events queued for the webhook" in result.output
    unknown = await asyncio.to_thread(
        runner.invoke, main, ["events", "replay", "--since", since, "--to", "nope"], env=env
    )
    assert unknown.exit_code == 1
    assert "no webhook endpoint" in unknown.output
