"""Helpers of the Bulk Data export tests: kick off, poll, download, compare, worker processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_worker.exports import Exporter
from tests.support.fhir_validator import FhirBodyChecker
from tests.support.processes import worker_process

ISSUER = "https://idp.bulk.example"
AUDIENCE = "https://ipt.bulk.example/fhir"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
Mint = Callable[..., str]


def exporter(db: AsyncEngine, **options: Any) -> Exporter:
    return Exporter(db, clock=lambda: datetime.now(UTC), **options)


async def kick_off(http: httpx.AsyncClient, url: str, token: str, **params: str) -> str:
    response = await http.get(url, params=params, headers={**ASYNC, **auth(token)})
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


async def finished_manifest(
    http: httpx.AsyncClient, db: AsyncEngine, status_url: str, token: str
) -> dict[str, Any]:
    await exporter(db).run_once()
    response = await http.get(status_url, headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    manifest: dict[str, Any] = response.json()
    return manifest


async def download(http: httpx.AsyncClient, url: str, token: str) -> list[dict[str, Any]]:
    """Download one NDJSON file; every line must be valid R4."""
    response = await http.get(url, headers={**auth(token), "Accept": "application/fhir+ndjson"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    checker = FhirBodyChecker()
    lines = response.content.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    for line in lines[:-1]:
        checker.check_body(url, "application/fhir+json", line)
    assert checker.problems == []
    return [orjson.loads(line) for line in lines[:-1]]


async def all_files(
    http: httpx.AsyncClient, manifest: dict[str, Any], token: str
) -> dict[str, list[dict[str, Any]]]:
    files = {}
    for output in manifest["output"]:
        resources = await download(http, output["url"], token)
        assert len(resources) == output["count"]
        assert {r["resourceType"] for r in resources} == {output["type"]}
        files[output["type"]] = resources
    return files


async def stored_ids(db: AsyncEngine, where: str = "TRUE", **params: Any) -> dict[str, set[str]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT resource_type, id FROM resource WHERE NOT deleted AND {where}"), params
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row.resource_type, set()).add(row.id)
        return found


def ids(files: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    return {t: {r["id"] for r in resources} for t, resources in files.items()}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def export_worker(database_url: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A worker process that exports in small pages (so it can be killed mid-export)."""
    settings = {
        "IPT_EXPORT_PAGE_SIZE": "10",
        "IPT_EXPORT_LEASE_S": "5",
        "IPT_EXPORT_POLL_INTERVAL_S": "0.1",
        "IPT_EVENT_PUBLISHERS": "log",
    }
    return worker_process(database_url, settings)


async def exported_so_far(db: AsyncEngine, accept: Callable[[int], bool]) -> bool:
    async with db.connect() as conn:
        count = await conn.scalar(text("SELECT coalesce(max(exported), 0) FROM bulk_export"))
    return accept(int(count or 0))


async def finished(http: httpx.AsyncClient, status_url: str, token: str) -> bool:
    return (await http.get(status_url, headers=auth(token))).status_code == 200


def generated(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {"resourceType": "Patient", "id": f"p{n:06d}", "gender": "female"}
