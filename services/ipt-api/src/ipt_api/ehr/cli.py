"""`ipt ehr`: run one EHR sync pass to the end (backfills), and show the sync status."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.engine import create_engine
from ipt_core.db.provision import database_url
from ipt_core.ehr import EhrEndpoint, EndpointsFileError, configured_endpoints
from ipt_core.ehr import repository as repo
from ipt_core.ehr.errors import RemoteError
from ipt_worker.ehr import (
    EndpointSync,
    open_endpoint,
    pull_once,
    push_due,
    register_endpoints,
    timing_from,
)
from ipt_worker.settings import WorkerSettings

__all__ = ["ehr_cli"]


@click.group("ehr")
def ehr_cli() -> None:
    """EHR sync (IPT_EHR_ENDPOINTS_FILE): one pass on demand, and its status."""


@ehr_cli.command()
@click.option("--endpoint", "name", default=None, help="Only this endpoint (default: all)")
@click.option("--push", "direction", flag_value="push", help="Only push")
@click.option("--pull", "direction", flag_value="pull", help="Only pull")
@click.option("--since", default=None, help="Pull what changed after this ISO 8601 instant")
def sync(name: str | None, direction: str | None, since: str | None) -> None:
    """Run one sync pass to the end, with a progress bar (e.g. a backfill with --since)."""
    settings = WorkerSettings()
    endpoints = _endpoints(settings, name)
    since_value = _instant(since) if since else None
    asyncio.run(_sync(settings, endpoints, direction, since_value))


@ehr_cli.command()
def status() -> None:
    """Per endpoint: queue depth, dead letters, last success per direction, last error."""
    settings = WorkerSettings()
    endpoints = _endpoints(settings, None)
    asyncio.run(_status(settings, endpoints))


def _endpoints(settings: WorkerSettings, name: str | None) -> Sequence[EhrEndpoint]:
    try:
        endpoints = configured_endpoints(settings.ehr_endpoints_file, os.environ)
    except EndpointsFileError as error:
        raise click.ClickException(str(error)) from error
    if not endpoints:
        raise click.ClickException("no EHR endpoints: set IPT_EHR_ENDPOINTS_FILE")
    chosen = [e for e in endpoints if name is None or e.name == name]
    if not chosen:
        raise click.ClickException(f"no endpoint named {name!r} in the endpoints file")
    return chosen


async def _engine(settings: WorkerSettings) -> AsyncEngine:
    url, _ = await database_url(settings)
    return create_engine(url, pool_size=4)


async def _sync(
    settings: WorkerSettings,
    endpoints: Sequence[EhrEndpoint],
    direction: str | None,
    since: str | None,
) -> None:
    engine = await _engine(settings)
    try:
        await register_endpoints(engine, endpoints)
        for endpoint in endpoints:
            async with open_endpoint(
                engine,
                endpoint,
                write_listeners(),
                timing_from(settings),
                destinations=settings.destination_policy,
            ) as sync:
                try:
                    await sync.refresh_capabilities(time.monotonic())
                    if direction in {None, "push"}:
                        await _push_all(sync)
                    if direction in {None, "pull"}:
                        await _pull_all(sync, since)
                except RemoteError as error:
                    raise click.ClickException(
                        f"{endpoint.name}: {error.outcome} ({error})"
                    ) from error
    finally:
        await engine.dispose()


async def _push_all(sync: EndpointSync) -> None:
    async with sync.engine.connect() as conn:
        pending, _, _ = await repo.queue_counts(conn, sync.name)
    with click.progressbar(length=pending, label=f"{sync.name}: push") as bar:
        # Items waiting out a backoff stay queued for the worker; a pass ends when none is due.
        while claimed := await push_due(sync):
            bar.update(claimed)
    async with sync.engine.connect() as conn:
        pending, dead, _ = await repo.queue_counts(conn, sync.name)
    click.echo(f"{sync.name}: {pending} still queued, {dead} dead letters")


async def _pull_all(sync: EndpointSync, since: str | None) -> None:
    with click.progressbar(length=1, label=f"{sync.name}: pull") as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        counts = await pull_once(sync, since=since, progress=progress)
    click.echo(
        f"{sync.name}: pulled {counts.stored}, skipped {counts.skipped}, "
        f"unmatched patients {counts.unmatched_patients}, failed {counts.failed}"
    )


async def _status(settings: WorkerSettings, endpoints: Sequence[EhrEndpoint]) -> None:
    engine = await _engine(settings)
    try:
        async with engine.connect() as conn:
            for endpoint in endpoints:
                row = await repo.endpoint_row(conn, endpoint.name)
                pending, dead, oldest = await repo.queue_counts(conn, endpoint.name)
                lag = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
                click.echo(f"{endpoint.name}  {endpoint.base_url}")
                click.echo(f"  queued {pending}  dead letters {dead}  push lag {lag:.0f}s")
                if row is not None:
                    click.echo(f"  last push {row.last_push_at}  last pull {row.last_pull_at}")
                    click.echo(f"  pushes {', '.join(row.accepted_types or []) or '(unknown)'}")
                    if row.last_error:
                        click.echo(f"  last error {row.last_error} at {row.last_error_at}")
    finally:
        await engine.dispose()


def _instant(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 instant") from error
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
