"""Race safety: concurrent conditional creates and concurrent If-Match updates."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

FHIR = {"Content-Type": "application/fhir+json"}
ROUNDS = 3  # each round is a fresh race; `make test` runs them every time


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_concurrent_conditional_creates_make_one_resource(
    client: httpx.AsyncClient, round_: int
) -> None:
    identifier = f"urn:test:mrn|race-{round_}"
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": f"race-{round_}"}],
    }

    async def conditional_create() -> httpx.Response:
        return await client.post(
            "/fhir/Patient",
            json=body,
            headers={**FHIR, "If-None-Exist": f"identifier={identifier}"},
        )

    responses = await asyncio.gather(*(conditional_create() for _ in range(50)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 49}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    history = (await client.get("/fhir/Patient/_history?_count=1000")).json()
    assert len(history["entry"]) == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_concurrent_if_match_updates_have_one_winner(
    client: httpx.AsyncClient, round_: int
) -> None:
    created = (
        await client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR)
    ).json()
    url = f"/fhir/Patient/{created['id']}"

    async def update(n: int) -> httpx.Response:
        body = {**created, "name": [{"family": f"Writer{n}"}]}
        return await client.put(url, json=body, headers={**FHIR, "If-Match": 'W/"1"'})

    responses = await asyncio.gather(*(update(n) for n in range(20)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: 19}
    winner = next(r for r in responses if r.status_code == 200).json()
    current = (await client.get(url)).json()
    assert current["meta"]["versionId"] == "2"
    assert current["name"] == winner["name"]


async def test_concurrent_update_as_create_with_one_client_id(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient", "id": "same-id"}
    responses = await asyncio.gather(
        *(client.put("/fhir/Patient/same-id", json=body, headers=FHIR) for _ in range(10))
    )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 9}
    versions = sorted(int(r.json()["meta"]["versionId"]) for r in responses)
    assert versions == list(range(1, 11))
