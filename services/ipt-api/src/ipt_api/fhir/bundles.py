"""Bundles built from stored JSON: each entry's resource is spliced in as raw bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ipt_api.outcomes import operation_outcome
from ipt_core.fhir.errors import Issue
from ipt_core.fhir.history import HistoryEntry
from ipt_core.fhir.model import StoredResource
from ipt_core.instants import format_instant

__all__ = ["Links", "history_bundle", "searchset_bundle"]

Links = dict[str, str | None]  # relation (self, next, previous) -> absolute URL

_STATUS_OF_METHOD = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}


def history_bundle(
    entries: Sequence[HistoryEntry], *, base: str, self_url: str, next_url: str | None
) -> dict[str, Any]:
    """Build a `history` Bundle; its resources are the stored JSON, not re-serialized."""
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links}
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = [_history_entry(entry, base) for entry in entries]
    return bundle


def _history_entry(entry: HistoryEntry, base: str) -> dict[str, Any]:
    stored = entry.stored
    url = f"{stored.resource_type}/{stored.id}"
    rendered: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
    if stored.content is not None:
        rendered["resource"] = orjson.Fragment(stored.content)
    rendered["request"] = {
        "method": entry.method,
        "url": url if entry.method != "POST" else stored.resource_type,
    }
    rendered["response"] = {
        "status": _STATUS_OF_METHOD[entry.method],
        "etag": stored.etag,
        "lastModified": format_instant(stored.last_updated),
    }
    return rendered


def searchset_bundle(
    *,
    base: str,
    links: Links,
    matches: Sequence[tuple[StoredResource, str]],
    included: Sequence[tuple[StoredResource, str]] = (),
    total: int | None = None,
    issues: Sequence[Issue] = (),
) -> dict[str, Any]:
    """Build a `searchset` Bundle; each `(stored, content)` pair is spliced in as raw JSON.

    `content` is the stored JSON, or its `_summary`/`_elements` subset.
    """
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links.items() if url]
    entries = [_search_entry(stored, content, base, "match") for stored, content in matches]
    entries += [_search_entry(stored, content, base, "include") for stored, content in included]
    if issues:
        entries.append({"resource": operation_outcome(issues), "search": {"mode": "outcome"}})
    if entries:  # FHIR JSON has no empty arrays
        bundle["entry"] = entries
    return bundle


def _search_entry(stored: StoredResource, content: str, base: str, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": orjson.Fragment(content),
        "search": {"mode": mode},
    }
