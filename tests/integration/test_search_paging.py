"""Keyset paging: stable under concurrent writes, previous links, tokens, absolute links."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings

FHIR = {"Content-Type": "application/fhir+json"}
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def encounter(day: int, **extra: Any) -> dict[str, Any]:
    start = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T09:00:00Z"
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": "AMB"},
        "period": {"start": start},
        **extra,
    }


async def seed(client: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    made = []
    for day in range(n):
        response = await client.post("/fhir/Encounter", json=encounter(day), headers=FHIR)
        made.append(response.json())
    return made


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


async def touch(client: httpx.AsyncClient, resource: dict[str, Any], **changes: Any) -> None:
    current = (await client.get(f"/fhir/Encounter/{resource['id']}")).json()
    response = await client.put(
        f"/fhir/Encounter/{resource['id']}", json={**current, **changes}, headers=FHIR
    )
    assert response.status_code == 200, response.text


async def page_through(client: httpx.AsyncClient, url: str, between_pages: Any = None) -> list[str]:
    seen: list[str] = []
    page = 0
    next_url: str | None = url
    while next_url:
        bundle = (await client.get(next_url)).json()
        seen += [
            e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
        ]
        next_url = link(bundle, "next")
        if between_pages is not None:
            await between_pages(page, set(seen))
        page += 1
    return seen


@pytest.mark.parametrize("sort", ["", "-_lastUpdated", "_lastUpdated", "date", "-date"])
async def test_writes_between_pages_skip_and_repeat_nothing(
    client: httpx.AsyncClient, sort: str
) -> None:
    originals = await seed(client, 60)
    by_id = {r["id"]: r for r in originals}

    async def write(page: int, seen: set[str]) -> None:
        # Each page: a new resource, an update of a seen one and of an unseen one (both move
        # in _lastUpdated and in date), and a delete of an unseen one.
        await client.post("/fhir/Encounter", json=encounter(page), headers=FHIR)
        unseen = [r for r in originals if r["id"] not in seen and r["id"] not in deleted]
        seen_one = next(r for r in originals if r["id"] in seen)
        await touch(client, seen_one, period={"start": "2030-01-01T09:00:00Z"})
        if len(unseen) > 2:
            await touch(client, unseen[0], period={"start": "2020-01-01T09:00:00Z"})
            await client.delete(f"/fhir/Encounter/{unseen[-1]['id']}")
            deleted.add(unseen[-1]["id"])

    deleted: set[str] = set()
    query = f"/fhir/Encounter?_count=7{'&_sort=' + sort if sort else ''}"
    seen = await page_through(client, query, write)
    counts = Counter(seen)
    assert max(counts.values()) == 1, "a resource was repeated"
    missing = set(by_id) - deleted - set(seen)
    assert not missing, f"{len(missing)} resources were skipped"


async def test_previous_links_walk_back(client: httpx.AsyncClient) -> None:
    await seed(client, 23)
    forward: list[list[str]] = []
    bundle = (await client.get("/fhir/Encounter?_count=5&_sort=-date")).json()
    assert link(bundle, "previous") is None
    while True:
        forward.append([e["resource"]["id"] for e in bundle["entry"]])
        next_url = link(bundle, "next")
        if next_url is None:
            break
        bundle = (await client.get(next_url)).json()
    backward: list[list[str]] = []
    while (previous := link(bundle, "previous")) is not None:
        bundle = (await client.get(previous)).json()
        backward.append([e["resource"]["id"] for e in bundle["entry"]])
    assert backward == list(reversed(forward[:-1]))
    assert sum(len(page) for page in forward) == 23


async def test_page_tokens_are_opaque_and_checked(client: httpx.AsyncClient) -> None:
    await seed(client, 4)
    first = (await client.get("/fhir/Encounter?_count=2&status=finished")).json()
    next_url = link(first, "next")
    assert next_url is not None
    token = next_url.split("_page=")[1]
    assert "finished" not in base64.urlsafe_b64decode(token + "==").decode(errors="ignore")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, "garbage", token + "x"):
        response = await client.get(f"/fhir/Encounter?_count=2&status=finished&_page={bad}")
        assert response.status_code == 400, bad
    other_search = await client.get(f"/fhir/Encounter?_count=2&status=planned&_page={token}")
    assert other_search.status_code == 400
    other_sort = await client.get(f"/fhir/Encounter?_sort=date&status=finished&_page={token}")
    assert other_sort.status_code == 400


@pytest.fixture
async def public_client(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings(public_base_url="https://ehr.example.org/ipt")
    app = create_app(settings, database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal") as http:
            yield http


async def test_links_use_the_public_base_url(public_client: httpx.AsyncClient) -> None:
    await seed(public_client, 3)
    bundle = (await public_client.get("/fhir/Encounter?_count=2")).json()
    assert link(bundle, "self") == "https://ehr.example.org/ipt/fhir/Encounter?_count=2"
    assert (link(bundle, "next") or "").startswith("https://ehr.example.org/ipt/fhir/Encounter?")
    assert bundle["entry"][0]["fullUrl"].startswith("https://ehr.example.org/ipt/fhir/Encounter/")
    history = (await public_client.get("/fhir/_history?_count=1")).json()
    assert (link(history, "next") or "").startswith("https://ehr.example.org/ipt/fhir/_history?")


async def test_links_follow_an_allowed_host_the_client_used(db: AsyncEngine) -> None:
    # Without IPT_PUBLIC_BASE_URL, links use the request's Host when IPT_ALLOWED_HOSTS has it
    # (a Host outside the list is refused: tests/integration/test_request_gate.py).
    app = create_app(
        api_settings(allowed_hosts=["testserver", "*.hospital.test"]), database=Database(db)
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await seed(client, 3)
            bundle = (await client.get("http://fhir.hospital.test/fhir/Encounter?_count=2")).json()
    assert (link(bundle, "next") or "").startswith("http://fhir.hospital.test/fhir/Encounter?")
