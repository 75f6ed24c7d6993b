"""Bundles built from stored JSON: each entry's resource is spliced in as raw bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ipt_core.fhir.history import HistoryEntry
from ipt_core.fhir.model import format_instant

__all__ = ["history_bundle"]

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
