"""The `ipt` command line: run the service, migrate, export the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import click
import uvicorn

from ipt_api.app import create_app
from ipt_api.demo import has_ipt_courses, seed_demo
from ipt_api.devauth import DevAuth, dev_environment, mint_dev_token
from ipt_api.ehr.cli import ehr_cli
from ipt_api.events.cli import events_cli
from ipt_api.http_protocol import CoalescingHttpToolsProtocol
from ipt_api.settings import ApiSettings
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.db.provision import database_url
from ipt_core.ehr import EndpointsFileError
from ipt_core.events.webhooks import reseal_secrets
from ipt_core.sealing import Keyring, new_key
from ipt_core.telemetry import configure_process, setup_logging

__all__ = ["main"]


@click.group()
def main() -> None:
    """IPT Care Service: courses of Interpersonal Psychotherapy in FHIR R4."""
    setup_logging()


main.add_command(events_cli)
main.add_command(ehr_cli)


@main.command()
def run() -> None:
    """Run everything for local use: database (embedded unless DATABASE_URL), migrations, API."""
    settings = ApiSettings()
    url, embedded = asyncio.run(_prepare_database(settings))
    if created := asyncio.run(_seed_demo_data(url, only_when_empty=True)):
        click.echo(f"empty database: wrote the demo caseload ({created} courses)")
    # One command, both processes' work: the worker loops run inside the API process.
    settings = settings.model_copy(update={"database_url": url, "run_worker": True})
    base = f"http://{settings.api_host}:{settings.api_port}"
    click.echo(
        f"\nIPT Care Service\n  FHIR API   {base}/fhir/metadata\n  API docs   {base}/docs\n"
        f"  Database   {'embedded PostgreSQL' if embedded else 'DATABASE_URL'}\n"
        "Press Ctrl-C to stop.\n"
    )
    if settings.auth_mode == "disabled":
        logging.getLogger("ipt").warning("authentication is DISABLED (local development only)")
    elif settings.loopback_only:
        click.echo(
            "Authentication is on: TOKEN=$(.tools/bin/uv run ipt dev-token --scope 'system/*.*')"
        )
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; turning them into
    # exceptions lets the `finally` below stop the database this command started.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        _serve(settings)
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            click.echo("stopping embedded PostgreSQL")
            embedded.stop()


@main.command()
def serve() -> None:
    """Run the API only, against DATABASE_URL (containers; migrations run as a separate job)."""
    settings = ApiSettings()
    _serve(settings)


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (and seal plain secrets when keys are set)."""
    settings = _core_settings()
    url, _ = asyncio.run(_prepare_database(settings))
    click.echo("database is up to date")
    if settings.keyring is not None:
        changed = asyncio.run(_reseal(url, settings.keyring))
        click.echo(f"secrets sealed with key {settings.keyring.current_kid}: {changed} changed")


@main.group("secrets")
def secrets_cli() -> None:
    """Secrets at rest (IPT_SECRETS_KEYS): new keys, re-sealing after a rotation."""


@secrets_cli.command("new-key")
@click.argument("key_id")
def secrets_new_key(key_id: str) -> None:
    """Print a new IPT_SECRETS_KEYS entry `KEY_ID:base64`; put it first to rotate."""
    click.echo(new_key(key_id))


@secrets_cli.command("reseal")
def secrets_reseal() -> None:
    """Seal plain secrets and re-seal old keys' with the first key of IPT_SECRETS_KEYS."""
    settings = _core_settings()
    if settings.keyring is None:
        raise click.ClickException("IPT_SECRETS_KEYS is not set")
    url, _ = asyncio.run(_prepare_database(settings))
    changed = asyncio.run(_reseal(url, settings.keyring))
    click.echo(f"secrets sealed with key {settings.keyring.current_kid}: {changed} changed")


async def _reseal(url: str, keyring: Keyring) -> int:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await reseal_secrets(conn, keyring)
    finally:
        await engine.dispose()


@main.command("dev-env")
def dev_env() -> None:
    """Print shell settings for local runs with authentication on (`eval "$(ipt dev-env)"`)."""
    settings = _core_settings()
    click.echo(dev_environment(_dev_auth(settings), _dev_audience(settings)))


@main.command("dev-token")
@click.option("--scope", required=True, help="SMART scopes, e.g. 'system/*.cruds' or 'user/*.rs'")
@click.option("--patient", default=None, help="The token's patient claim (patient/ scopes)")
@click.option("--subject", default="dev-user", show_default=True, help="The token's sub")
@click.option("--expires-in", default=3600, show_default=True, help="Seconds until it expires")
def dev_token(scope: str, patient: str | None, subject: str, expires_in: int) -> None:
    """Mint a token with the local dev key (what `make run` accepts); local use only."""
    settings = _core_settings()
    token = mint_dev_token(
        _dev_auth(settings),
        scope=scope,
        audience=_dev_audience(settings),
        patient=patient,
        subject=subject,
        expires_in_s=expires_in,
    )
    click.echo(token)


def _dev_auth(settings: ApiSettings) -> DevAuth:
    return DevAuth(settings.data_dir / "dev-auth")


def _dev_audience(settings: ApiSettings) -> str:
    # The audience the dev-run API expects: its own FHIR base on loopback.
    return settings.token_audience or f"http://127.0.0.1:{settings.api_port}/fhir"


@main.command("seed-demo")
def seed_demo_command() -> None:
    """Write the demo caseload: a dozen synthetic patients, a course in every phase."""
    url, _ = asyncio.run(_prepare_database(_core_settings()))
    created = asyncio.run(_seed_demo_data(url, only_when_empty=False))
    click.echo(f"wrote the demo caseload: {created} courses" if created else "demo data exists")


async def _seed_demo_data(url: str, *, only_when_empty: bool) -> int:
    engine = create_engine(url, pool_size=2)
    try:
        if only_when_empty:
            async with engine.connect() as conn:
                if await has_ipt_courses(conn):
                    return 0
        return await seed_demo(engine)
    finally:
        await engine.dispose()


@main.command()
@click.option(
    "--check",
    "check_path",
    type=click.Path(path_type=Path),
    help="Fail if this file differs from the generated document.",
)
def openapi(check_path: Path | None) -> None:
    """Print the OpenAPI document, or check a file against it."""
    document = json.dumps(_openapi_document(), indent=2, sort_keys=True) + "\n"
    if check_path is None:
        click.echo(document, nl=False)
        return
    if not check_path.exists() or check_path.read_text() != document:
        click.echo(f"{check_path} is stale: run `make openapi` and commit it", err=True)
        sys.exit(1)
    click.echo(f"{check_path} is up to date")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve(settings: ApiSettings) -> None:
    configure_process(
        "ipt-api",
        otlp_endpoint=settings.otel_exporter_otlp_endpoint,
        prometheus=settings.metrics_enabled,
    )
    try:
        app = create_app(settings)
    except EndpointsFileError as error:  # a bad endpoints file stops the start, said plainly
        raise click.ClickException(f"IPT_EHR_ENDPOINTS_FILE: {error}") from error
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        access_log=False,  # URLs can carry patient identifiers; requests are logged by route
        proxy_headers=True,
        log_level="info",
        log_config=None,  # keep the JSON logging set up by `main`
        # After SIGTERM: drain in-flight requests, then end what is left (event streams).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        http=CoalescingHttpToolsProtocol,  # one write per response (ipt_api/http_protocol.py)
    )
    uvicorn.Server(config).run()


def _core_settings() -> ApiSettings:
    # Migrations need only the database settings; auth settings must not stop them.
    return ApiSettings(auth_mode="disabled", api_host="127.0.0.1")


async def _prepare_database(settings: ApiSettings) -> tuple[str, EmbeddedPostgres | None]:
    url, embedded = await database_url(settings)
    engine = create_engine(url, pool_size=1)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url, embedded


def _openapi_document() -> dict[str, object]:
    settings = ApiSettings(auth_mode="disabled", api_host="127.0.0.1")
    return create_app(settings).openapi()
