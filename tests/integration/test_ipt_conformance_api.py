"""The IPT model's conformance resources, read-only under /fhir and in the CapabilityStatement."""

from __future__ import annotations

import httpx
import pytest

from ipt_core.ipt import conformance_resources

TYPES = ("CodeSystem", "StructureDefinition", "SearchParameter")


@pytest.mark.parametrize("resource_type", TYPES)
async def test_each_type_lists_and_reads_its_resources(
    client: httpx.AsyncClient, resource_type: str
) -> None:
    expected = {r["id"]: r for r in conformance_resources() if r["resourceType"] == resource_type}
    listing = await client.get(f"/fhir/{resource_type}")
    assert listing.status_code == 200, listing.text
    bundle = listing.json()
    assert (bundle["type"], bundle["total"]) == ("searchset", len(expected))
    assert {e["resource"]["id"] for e in bundle["entry"]} == set(expected)
    for resource_id, resource in expected.items():
        read = await client.get(f"/fhir/{resource_type}/{resource_id}")
        assert read.status_code == 200
        assert read.json() == resource


async def test_the_listing_filters_by_url_and_id(client: httpx.AsyncClient) -> None:
    url = "http://fhir.ipt-care.org/CodeSystem/ipt-problem-area"
    by_url = (await client.get("/fhir/CodeSystem", params={"url": url})).json()
    assert [e["resource"]["url"] for e in by_url["entry"]] == [url]
    by_id = (await client.get("/fhir/CodeSystem", params={"_id": "nope"})).json()
    assert (by_id["total"], "entry" in by_id) == (0, False)


async def test_the_four_code_systems_of_the_model_are_served(client: httpx.AsyncClient) -> None:
    bundle = (await client.get("/fhir/CodeSystem")).json()
    codes = {
        e["resource"]["url"].rsplit("/", 1)[1]: {c["code"] for c in e["resource"]["concept"]}
        for e in bundle["entry"]
    }
    assert codes["ipt-problem-area"] == {
        "grief",
        "role-transition",
        "role-dispute",
        "interpersonal-deficits",
    }
    assert set(codes) == {"ipt-problem-area", "ipt-course-type", "ipt-phase", "ipt-activity"}


async def test_the_capability_statement_lists_them_read_only(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    entries = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for resource_type in TYPES:
        interactions = {i["code"] for i in entries[resource_type]["interaction"]}
        assert interactions == {"read", "search-type"}
