"""fhirpy, fhirclient and Medplum's client page through 250 Encounters over HTTP and get each
exactly once.

fhirclient reads /metadata strictly and refuses relative `next` links; fhirpy refuses links
outside the base it was given and counts with `_count=0&_totalMethod=count`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from fhirclient import client as smart_client
from fhirclient.models.encounter import Encounter
from fhirpy import SyncFHIRClient

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TOTAL = 250


@pytest.fixture
def encounters(live_server: str) -> set[str]:
    """250 Encounters, created in one transaction Bundle posted to the base with a slash."""
    entries = [
        {
            "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": ACT, "code": "AMB"},
                "period": {"start": f"2026-01-01T09:{n % 60:02d}:00Z"},
            },
            "request": {"method": "POST", "url": "Encounter"},
        }
        for n in range(TOTAL)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = httpx.post(
        f"{live_server}/",
        content=orjson.dumps(bundle),
        headers={"Content-Type": "application/fhir+json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json()["entry"]}


def test_fhirpy_pages_to_the_end(live_server: str, encounters: set[str]) -> None:
    fhir = SyncFHIRClient(live_server)
    search = fhir.resources("Encounter").sort("-date").limit(20)
    found = [resource.id for resource in search.fetch_all()]
    assert Counter(found) == Counter(encounters)
    assert fhir.resources("Encounter").count() == TOTAL


def test_fhirclient_pages_to_the_end(live_server: str, encounters: set[str]) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "ipt-tests", "api_base": live_server})
    assert smart.server is not None
    smart.server.get_capability()  # strict parse of the CapabilityStatement
    search = Encounter.where(struct={"_count": "20", "_sort": "_lastUpdated"})
    found = [resource.id for resource in search.perform_resources_iter(smart.server)]
    assert Counter(found) == Counter(encounters)


# @medplum/core 4.5.2 (5.x needs Node 22), pinned in node/package-lock.json and installed by
# `make install`: nothing is downloaded while testing.
_NODE_CLIENTS = Path(__file__).with_name("node")


def _medplum_script() -> Path:
    """The Medplum paging script, or a skip saying why it cannot run here."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: the Medplum client cannot run")
    if not (_NODE_CLIENTS / "node_modules" / "@medplum" / "core").is_dir():
        pytest.fail("the Medplum client is not installed: run `make install` (npm ci)")
    return _NODE_CLIENTS / "medplum_paging.mjs"


def test_medplum_client_pages_to_the_end(live_server: str, encounters: set[str]) -> None:
    script = _medplum_script()
    root = live_server.removesuffix("/fhir") + "/"
    result = subprocess.run(
        ["node", str(script), root], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(result.stdout)
    assert Counter(found) == Counter(encounters)
