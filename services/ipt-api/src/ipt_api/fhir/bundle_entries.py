"""Entries of batch and transaction Bundles: parsed requests, and each one carried out.

An entry's `request` names an interaction by method and relative URL, as a REST call would:
`POST Patient`, `PUT Patient/1`, `PUT Patient?identifier=…`, `PATCH Patient/1` (a Binary
holding a JSON Patch), `DELETE Patient?…`, `GET Patient/1`, `GET Patient?name=…`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ipt_api.authz import authorize, authorize_criteria, compartment_criteria, read_visible
from ipt_api.fhir.patch import JSON_PATCH, json_patch
from ipt_api.fhir.search import searchset
from ipt_api.principal import AUDIT_TYPE, Principal
from ipt_core.fhir.errors import InvalidRequest, MethodNotAllowed, PreconditionFailed
from ipt_core.fhir.model import ResourcePut, StoredResource
from ipt_core.fhir.registry import REGISTRY
from ipt_core.fhir.search import search_runner
from ipt_core.fhir.store import ResourceStore
from ipt_core.instants import format_instant

__all__ = [
    "BundleEntry",
    "authorize_entry",
    "carry_out",
    "entry_interaction",
    "parse_entry",
    "settled_put",
    "status_line",
    "written",
]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_ETAG = re.compile(r'^\s*(?:W/)?"?(?P<version>\d+)"?\s*$')
_INTERACTION = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class BundleEntry:
    """One entry's request. `new_id` / `target_id` are settled before a transaction writes."""

    index: int
    method: str
    resource_type: str
    id: str | None
    version: str | None
    query: str | None  # conditional criteria, or search parameters
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None
    if_none_match: str | None
    new_id: str | None = None  # POST: the id to create with
    existing_id: str | None = None  # POST with ifNoneExist that matched; conditional PUT


def status_line(status: int) -> str:
    """Render an HTTP status as FHIR's `Bundle.entry.response.status`, e.g. `201 Created`."""
    return f"{status} {HTTPStatus(status).phrase}"


def parse_entry(index: int, raw: Any, base: str) -> BundleEntry:
    """Parse `Bundle.entry[index]`.

    Raises:
        InvalidRequest: when the entry's request is missing or malformed.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise InvalidRequest("Every entry needs a request", expression=(f"Bundle.entry[{index}]",))
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _METHODS or not isinstance(url, str) or not url:
        raise InvalidRequest(
            "The entry's request needs a method (GET, POST, PUT, PATCH, DELETE) and a url",
            expression=(f"Bundle.entry[{index}].request",),
        )
    path, _, query = _relative(url, base).partition("?")
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == AUDIT_TYPE:
        raise MethodNotAllowed(
            "AuditEvents cannot be changed, nor read in a Bundle: use GET /fhir/AuditEvent"
        )
    if not parts or parts[0] not in REGISTRY:
        raise InvalidRequest(
            f"Unsupported entry url {url!r}", expression=(f"Bundle.entry[{index}]",)
        )
    resource = raw.get("resource")
    return BundleEntry(
        index=index,
        method=method,
        resource_type=parts[0],
        id=parts[1] if len(parts) > 1 else None,
        version=parts[3] if len(parts) == 4 and parts[2] == "_history" else None,
        query=query or None,
        resource=resource if isinstance(resource, dict) else None,
        full_url=raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
        if_match=_version(request.get("ifMatch")),
        if_none_exist=request.get("ifNoneExist"),
        if_none_match=request.get("ifNoneMatch"),
    )


async def carry_out(
    entry: BundleEntry, store: ResourceStore, principal: Principal, base: str
) -> dict[str, Any]:
    """Perform `entry`'s interaction and return its response entry. Raises FhirError."""
    t = entry.resource_type
    authorize_entry(entry, principal)
    if entry.method in {"GET", "HEAD"}:
        return await _read(entry, store, principal, base)
    if entry.method == "DELETE":
        if entry.id is not None:
            await store.delete(t, entry.id)
        else:
            await store.conditional_delete(t, _criteria(entry))
        return {"response": {"status": status_line(204)}}
    if entry.method == "PATCH":
        change = json_patch(_patch_document(entry))
        if entry.id is not None:
            result = await store.patch(t, entry.id, change, if_match=entry.if_match)
        else:
            result = await store.conditional_patch(
                t, _criteria(entry), change, if_match=entry.if_match
            )
        return written(result.stored, 200, base)
    body = _resource(entry)
    if entry.method == "POST":
        result = await store.create(t, body, if_none_exist=entry.if_none_exist, new_id=entry.new_id)
        return written(result.stored, 201 if result.changed else 200, base)
    return await _put(entry, body, store, base)


def settled_put(entry: BundleEntry) -> ResourcePut | None:
    """The store write of a settled transaction's plain POST or PUT; None for other entries.

    After a transaction settled its ids, a POST has its new id (or matched an existing
    resource: no write) and a conditional PUT its target; `carry_out` does the rest.
    """
    t, body = entry.resource_type, entry.resource
    if body is None:
        return None
    if entry.method == "POST":
        if entry.existing_id is not None or entry.new_id is None:
            return None
        return ResourcePut(t, entry.new_id, body, create=True)
    if entry.method != "PUT":
        return None
    if entry.id is not None:
        return ResourcePut(t, entry.id, body, entry.if_match)
    target = entry.existing_id or (entry.new_id if entry.if_match is None else None)
    return (
        None if target is None else ResourcePut(t, target, {**body, "id": target}, entry.if_match)
    )


def authorize_entry(entry: BundleEntry, principal: Principal) -> None:
    """Authorize the entry's interaction and what its criteria reach (before matching them).

    A compartment caller's criteria are narrowed to its patient here, once per entry.
    """
    t = entry.resource_type
    authorize(principal, t, entry_interaction(entry), id_=entry.id)
    if entry.if_none_exist:
        authorize_criteria(principal, t, entry.if_none_exist)
        entry.if_none_exist = compartment_criteria(principal, t, entry.if_none_exist)
    if entry.query and entry.id is None and entry.method != "GET":
        authorize_criteria(principal, t, entry.query)
        entry.query = compartment_criteria(principal, t, entry.query)


def entry_interaction(entry: BundleEntry) -> str:
    """The interaction `entry` performs, as scopes and the audit name it."""
    if entry.method in _INTERACTION:
        return _INTERACTION[entry.method]
    if entry.id is None:
        return "search"
    return "vread" if entry.version is not None else "read"


def written(stored: StoredResource, status: int, base: str) -> dict[str, Any]:
    """The response entry of a write (or a read), with the resource as stored."""
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": orjson.Fragment(stored.content or "{}"),
        "response": {
            "status": status_line(status),
            "location": stored.path,
            "etag": stored.etag,
            "lastModified": format_instant(stored.last_updated),
        },
    }


async def _put(
    entry: BundleEntry, body: dict[str, Any], store: ResourceStore, base: str
) -> dict[str, Any]:
    t = entry.resource_type
    if entry.id is not None:
        result = await store.update(t, entry.id, body, if_match=entry.if_match)
    elif entry.existing_id is not None:  # a transaction resolved the criteria beforehand
        result = await store.update(
            t, entry.existing_id, {**body, "id": entry.existing_id}, if_match=entry.if_match
        )
    elif entry.new_id is not None:
        if entry.if_match is not None:
            raise PreconditionFailed("If-Match was given but no resource matches")
        result = await store.update(t, entry.new_id, {**body, "id": entry.new_id})
    else:
        result = await store.conditional_update(t, _criteria(entry), body, if_match=entry.if_match)
    return written(result.stored, 201 if result.created else 200, base)


async def _read(
    entry: BundleEntry, store: ResourceStore, principal: Principal, base: str
) -> dict[str, Any]:
    t = entry.resource_type
    if entry.id is None:
        params = parse_qsl(entry.query or "", keep_blank_values=True)
        runner = await search_runner(store.conn)
        limits = store.search_limits
        bundle = await searchset(
            runner, principal, t, params, base=base, strict=False, limits=limits
        )
        return {"resource": bundle, "response": {"status": status_line(200)}}
    stored = await read_visible(store, principal, t, entry.id, entry.version)
    if entry.if_none_match and _version(entry.if_none_match) == stored.version_id:
        return {"response": {"status": status_line(304), "etag": stored.etag}}
    response = written(stored, 200, base)
    if entry.method == "HEAD":
        del response["resource"]
    return response


def _relative(url: str, base: str) -> str:
    if url.startswith(base + "/"):
        return url[len(base) + 1 :]
    if "://" in url:
        raise InvalidRequest(f"The entry url {url!r} is not on this server ({base})")
    return url.lstrip("/")


def _version(etag: Any) -> int | None:
    if not isinstance(etag, str):
        return None
    match = _ETAG.match(etag)
    if match is None:
        raise InvalidRequest(f'{etag!r} is not a version ETag such as W/"1"')
    return int(match["version"])


def _criteria(entry: BundleEntry) -> str:
    if not entry.query:
        raise MethodNotAllowed(f"{entry.method} {entry.resource_type} needs an id or criteria")
    return entry.query


def _resource(entry: BundleEntry) -> dict[str, Any]:
    if entry.resource is None:
        raise InvalidRequest(
            f"{entry.method} needs a resource", expression=(f"Bundle.entry[{entry.index}]",)
        )
    return entry.resource


def _patch_document(entry: BundleEntry) -> Any:
    binary = _resource(entry)
    if binary.get("resourceType") != "Binary" or binary.get("contentType") != JSON_PATCH:
        raise InvalidRequest(f"A PATCH entry holds a Binary with contentType {JSON_PATCH}")
    try:
        return orjson.loads(base64.b64decode(binary.get("data", ""), validate=True))
    except (binascii.Error, ValueError):
        raise InvalidRequest("The PATCH entry's Binary.data is not base64 JSON") from None
