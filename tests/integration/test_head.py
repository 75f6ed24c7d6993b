"""`HEAD` on the FHIR reads and searches: the GET's status and headers, no body (RFC 9110).

Against a real uvicorn, which drops a HEAD response's body; the same authorization and audit
as the GET.
"""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from tests.support.api import api_settings, served
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

FHIR = {"Content-Type": "application/fhir+json"}


async def test_head_answers_as_get_without_the_body(db: AsyncEngine, database_url: str) -> None:
    settings = api_settings(database_url=database_url.replace("+asyncpg", ""))
    with served(create_app(settings)) as port:
        base = f"http://127.0.0.1:{port}/fhir"
        async with httpx.AsyncClient(base_url=base) as http:
            created = await http.post(
                "/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=FHIR
            )
            assert created.status_code == 201
            path = f"/Patient/{created.json()['id']}"
            for url in (path, f"{path}/_history/1", "/Patient?gender=female"):
                get, head = await http.get(url), await http.head(url)
                assert head.status_code == get.status_code == 200, url
                assert head.content == b""
                assert head.headers["content-type"] == get.headers["content-type"]
                assert head.headers["content-length"] == get.headers["content-length"]
                assert head.headers.get("etag") == get.headers.get("etag")
            assert (await http.head("/Patient/no-such-one")).status_code == 404
        # Audited as the reads they are (read, vread, search), once per GET and per HEAD.
        reads = "SELECT count(*) FROM audit_event WHERE action IN ('R', 'E')"
        await poll_until(
            lambda: query_scalar(db, reads), until=lambda n: n >= 7, within_s=10, what="audit"
        )
