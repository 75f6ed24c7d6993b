"""`ipt events`: operations on the event history (replay to a webhook endpoint or to NATS)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import click

from ipt_core.db.engine import create_engine
from ipt_core.db.provision import database_url
from ipt_core.instants import parse_instant
from ipt_worker.publishers import NatsPublisher
from ipt_worker.relay import UnknownEndpoint, replay_to_nats, replay_to_webhook
from ipt_worker.settings import WorkerSettings

__all__ = ["events_cli"]


@click.group("events")
def events_cli() -> None:
    """Events for dashboards: re-send history."""


@events_cli.command()
@click.option("--since", required=True, help="ISO 8601 instant, e.g. 2026-03-01T00:00:00Z")
@click.option("--until", default=None, help="ISO 8601 instant (default: now)")
@click.option("--to", "target", required=True, help="A webhook endpoint id, or `nats`")
def replay(since: str, until: str | None, target: str) -> None:
    """Re-send stored events created in [since, until) with their original ids.

    To a webhook endpoint the events are queued behind its pending deliveries and sent by
    the worker, in order per course. To `nats` they are published now (IPT_NATS_URL).
    """
    start, end = _instant(since), _instant(until) if until else datetime.now(UTC)
    try:
        count = asyncio.run(_replay(WorkerSettings(), start, end, target))
    except UnknownEndpoint as error:
        raise click.ClickException(f"no webhook endpoint has the id {error}") from error
    verb = "published to NATS" if target == "nats" else "queued for the webhook"
    click.echo(f"{count} events {verb}")


async def _replay(settings: WorkerSettings, since: datetime, until: datetime, target: str) -> int:
    url, _ = await database_url(settings)
    engine = create_engine(url, pool_size=2)
    try:
        if target == "nats":
            publisher = NatsPublisher(settings.nats_url, settings.nats_stream)
            return await replay_to_nats(engine, publisher, since=since, until=until)
        return await replay_to_webhook(
            engine, target, since=since, until=until, clock=lambda: datetime.now(UTC)
        )
    finally:
        await engine.dispose()


def _instant(value: str) -> datetime:
    try:
        return parse_instant(value)  # a time without a zone is UTC
    except ValueError as error:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 instant") from error
