"""EHR push under faults, through a proxy in front of the real sekmet-fhir server.

429 with Retry-After, 503 bursts, timeouts (also after the EHR wrote), connection resets,
412 on a stale version, an EHR without conditional update (search-then-write), an EHR that
refuses CarePlan, opaque version ids, 404 vs 410: nothing lost, nothing duplicated, backoff
observed. And an internal EHR address is refused by the destination guard unless allowed.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.ehr.errors import DestinationNotAllowed
from ipt_core.fhir.store import ResourceStore
from ipt_core.net.destinations import DestinationPolicy
from tests.integration.ehr_support import (
    MRN_SYSTEM,
    ProxyTransport,
    ehr_endpoint,
    ehr_patient,
    pending_items,
    phq9,
    push_until_empty,
    remote_by_sync_id,
    synced_endpoint,
)
from tests.support.sekmet import Sekmet


async def scores(db: AsyncEngine, count: int, mrn: str) -> list[str]:
    """Our Patient with `mrn` and `count` PHQ-9 scores (queued for the EHR); their refs."""
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners())
        patient = await store.create(
            "Patient",
            {"resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": mrn}]},
        )
        refs = []
        for n in range(count):
            written = await store.create("Observation", phq9(patient.stored.id, 10 + n, n + 1))
            refs.append(f"Observation/{written.stored.id}")
    return refs


async def rescore(db: AsyncEngine, ref: str, score: int) -> None:
    type_, id_ = ref.split("/")
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners())
        current = orjson.loads((await store.read(type_, id_)).content or "{}")
        await store.update(type_, id_, {**current, "valueInteger": score})


def one_copy(server: Sekmet, ref: str) -> dict[str, Any]:
    copies = remote_by_sync_id(server, "Observation", ref)
    assert len(copies) == 1, (ref, len(copies))
    return copies[0]


def is_write(request: httpx.Request) -> bool:
    return request.method in {"POST", "PUT"}


@pytest.fixture
def mrn(sekmet: Sekmet) -> str:
    value = f"MRN-{uuid.uuid4().hex[:8]}"
    ehr_patient(sekmet, value)
    return value


async def test_429_retry_after_and_503_bursts_are_waited_out(
    db: AsyncEngine, sekmet: Sekmet, mrn: str
) -> None:
    writes = {"n": 0}

    def plan(request: httpx.Request, index: int) -> httpx.Response | None:
        if not is_write(request):
            return None
        writes["n"] += 1
        if writes["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "1"})
        if writes["n"] in {2, 3, 4, 5, 6}:
            return httpx.Response(503)
        return None

    proxy = ProxyTransport(fault=plan)
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        refs = await scores(db, 3, mrn)
        await push_until_empty(sync, db)

    for ref in refs:
        one_copy(sekmet, ref)
    attempts = [s for s in proxy.seen if s.method in {"POST", "PUT"}]
    assert [s.status for s in attempts[:6]] == [429, 503, 503, 503, 503, 503]
    assert attempts[1].at - attempts[0].at >= 0.95  # Retry-After: 1 obeyed
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts[1:7])]
    assert all(gap >= 0.02 for gap in gaps)  # never hammered: backoff with jitter, every item
    assert await pending_items(db, "dead") == []


async def test_timeouts_and_resets_lose_nothing_and_duplicate_nothing(
    db: AsyncEngine, sekmet: Sekmet, mrn: str
) -> None:
    inner = httpx.AsyncHTTPTransport()
    writes = {"n": 0}
    lost: list[str] = []

    def plan(request: httpx.Request, index: int) -> httpx.Response | Exception | None:
        if not is_write(request):
            return None
        writes["n"] += 1
        if writes["n"] == 1:
            return httpx.ConnectError("connection reset by peer")
        if writes["n"] == 2:
            return httpx.ReadTimeout("timed out")
        if writes["n"] == 3:
            return httpx.RemoteProtocolError("server disconnected")
        return None

    class LosesResponses(ProxyTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if is_write(request) and writes["n"] in {4, 5}:
                lost.append(request.method)
                raise httpx.ReadTimeout("the EHR wrote it, the answer was lost")
            return response

    proxy = LosesResponses(fault=plan, inner=inner)
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        refs = await scores(db, 3, mrn)
        await push_until_empty(sync, db)
    assert lost == ["PUT", "PUT"]  # conditional updates whose answers never arrived
    for ref in refs:
        one_copy(sekmet, ref)


async def test_412_on_a_stale_version_reapplies_our_fields(
    db: AsyncEngine, sekmet: Sekmet, mrn: str
) -> None:
    proxy = ProxyTransport()
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        [ref] = await scores(db, 1, mrn)
        await push_until_empty(sync, db)
        remote = one_copy(sekmet, ref)
        # Someone else changes the EHR's copy: our remembered version is now stale.
        with sekmet.client() as http:
            changed = {**remote, "note": [{"text": "reviewed in the EHR"}]}
            assert http.put(f"/Observation/{remote['id']}", json=changed).status_code == 200
        await rescore(db, ref, 4)
        await push_until_empty(sync, db)
    statuses = [s.status for s in proxy.seen if s.method == "PUT"]
    assert 412 in statuses  # If-Match with the stale version was refused, then re-applied
    final = one_copy(sekmet, ref)
    assert final["id"] == remote["id"]
    assert final["valueInteger"] == 4


def without(statement: dict[str, Any], types: set[str], conditional: bool) -> dict[str, Any]:
    for rest in statement["rest"]:
        rest["resource"] = [r for r in rest["resource"] if r["type"] not in types]
        for resource in rest["resource"]:
            resource["conditionalUpdate"] = conditional
    return statement


def rewrite_metadata(types: set[str], conditional: bool) -> Any:
    def rewrite(request: httpx.Request, response: httpx.Response, body: bytes) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            body = json.dumps(without(json.loads(body), types, conditional)).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=body)

    return rewrite


async def test_no_conditional_update_and_no_careplan(
    db: AsyncEngine, sekmet: Sekmet, mrn: str
) -> None:
    lost = {"n": 0}

    class LosesFirstCreate(ProxyTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.method == "POST" and lost["n"] == 0:
                lost["n"] = 1
                raise httpx.ReadTimeout("created, but the answer was lost")
            return response

    proxy = LosesFirstCreate(rewrite=rewrite_metadata({"CarePlan", "Goal"}, conditional=False))
    endpoint = ehr_endpoint(sekmet.base_url)
    async with synced_endpoint(db, endpoint, proxy) as sync:
        refs = await scores(db, 2, mrn)
        assert sync.push_types() == ("Observation", "Encounter", "DocumentReference")
        async with db.begin() as conn:  # a course CarePlan queued anyway: skipped, not dead
            await conn.execute(
                text(
                    "INSERT INTO ehr_push_item (endpoint, kind, resource_type, resource_id, "
                    "status, generation, attempts, enqueued_at, due_at) VALUES ('sekmet', "
                    "'resource', 'CarePlan', 'x', 'pending', 1, 0, now(), now())"
                )
            )
        await push_until_empty(sync, db)
    puts_with_criteria = [
        s for s in proxy.seen if s.method == "PUT" and s.path.endswith("/Observation")
    ]
    assert puts_with_criteria == []  # no conditional update: search, then create or update
    assert {s.method for s in proxy.writes()} <= {"POST", "PUT"}
    assert lost["n"] == 1
    for ref in refs:
        one_copy(sekmet, ref)  # the lost create was found by the search, not made twice
    assert await pending_items(db, "dead") == []
    async with db.connect() as conn:
        stored = await conn.scalar(text("SELECT accepted_types FROM ehr_endpoint"))
    assert "CarePlan" not in stored


OPAQUE = "opaque-"


def opaque_versions(
    request: httpx.Request, response: httpx.Response, body: bytes
) -> httpx.Response:
    text_body = body.decode() if body else ""
    text_body = text_body.replace('"versionId":"', f'"versionId":"{OPAQUE}')
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if "etag" in headers:
        headers["etag"] = headers["etag"].replace('W/"', f'W/"{OPAQUE}')
    return httpx.Response(response.status_code, headers=headers, content=text_body.encode())


class OpaqueProxy(ProxyTransport):
    """An EHR whose version ids are strings: If-Match is translated back for sekmet."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if_match = request.headers.get("if-match")
        if if_match:
            request.headers["If-Match"] = if_match.replace(OPAQUE, "")
            self.if_matches.append(if_match)
        return await super().handle_async_request(request)

    if_matches: list[str] = []  # noqa: RUF012 (one list per test: the class is made per test)


async def test_opaque_version_ids(db: AsyncEngine, sekmet: Sekmet, mrn: str) -> None:
    proxy = OpaqueProxy(rewrite=opaque_versions)
    proxy.if_matches = []
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        [ref] = await scores(db, 1, mrn)
        await push_until_empty(sync, db)
        await rescore(db, ref, 3)
        await push_until_empty(sync, db)
    assert proxy.if_matches
    assert all(OPAQUE in value for value in proxy.if_matches)
    assert one_copy(sekmet, ref)["valueInteger"] == 3
    async with db.connect() as conn:
        version = await conn.scalar(
            text("SELECT remote_version FROM ehr_remote WHERE direction = 'push'")
        )
    assert str(version).startswith(OPAQUE)


@pytest.mark.parametrize("gone_status", [410, 404])
async def test_a_copy_deleted_in_the_ehr_is_written_again(
    db: AsyncEngine, sekmet: Sekmet, mrn: str, gone_status: int
) -> None:
    def as_status(request: httpx.Request, response: httpx.Response, body: bytes) -> httpx.Response:
        status = response.status_code
        if status in {404, 410}:
            status = gone_status  # one EHR says 404 for a deleted resource, another 410
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(status, headers=headers, content=body)

    proxy = ProxyTransport(rewrite=as_status)
    endpoint: EhrEndpoint = ehr_endpoint(sekmet.base_url)
    async with synced_endpoint(db, endpoint, proxy) as sync:
        [ref] = await scores(db, 1, mrn)
        await push_until_empty(sync, db)
        first = one_copy(sekmet, ref)
        with sekmet.client() as http:
            assert http.delete(f"/Observation/{first['id']}").status_code in {200, 204}
        await rescore(db, ref, 2)
        started = time.monotonic()
        await push_until_empty(sync, db)
        assert time.monotonic() - started < 10
    again = one_copy(sekmet, ref)
    assert again["valueInteger"] == 2
    assert await pending_items(db, "dead") == []


async def test_a_refusal_is_a_dead_letter_with_the_ehrs_outcome(
    db: AsyncEngine, sekmet: Sekmet, mrn: str
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Unknown code"}],
    }

    def plan(request: httpx.Request, index: int) -> httpx.Response | None:
        return httpx.Response(422, json=outcome) if is_write(request) else None

    proxy = ProxyTransport(fault=plan)
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        [ref] = await scores(db, 1, mrn)
        await push_until_empty(sync, db)
    [dead] = await pending_items(db, "dead")
    assert f"{dead.resource_type}/{dead.resource_id}" == ref
    assert dead.operation_outcome == outcome
    assert len(proxy.writes()) == 1  # a refusal is not retried


async def test_an_unmatched_patient_is_an_error_never_a_guess(
    db: AsyncEngine, sekmet: Sekmet
) -> None:
    proxy = ProxyTransport()
    async with synced_endpoint(db, ehr_endpoint(sekmet.base_url), proxy) as sync:
        await scores(db, 1, f"MRN-NOT-IN-EHR-{uuid.uuid4().hex[:6]}")
        await push_until_empty(sync, db)
    [dead] = await pending_items(db, "dead")
    assert dead.last_error.startswith("patient-unmatched")
    assert proxy.writes() == []  # no Patient created, nothing sent


async def test_an_internal_ehr_address_is_refused_unless_allowed(
    db: AsyncEngine, sekmet: Sekmet
) -> None:
    # The local EHR listens on loopback: without an IPT_OUTBOUND_ALLOW entry the destination
    # guard refuses it before connecting, and the failure says why without details.
    endpoint = ehr_endpoint(sekmet.base_url)
    with pytest.raises(DestinationNotAllowed) as refused:
        async with synced_endpoint(db, endpoint, destinations=DestinationPolicy()):
            pass
    assert refused.value.outcome == "destination-refused"
    async with synced_endpoint(db, endpoint) as sync:  # loopback allowed: it answers
        assert sync.capabilities is not None
