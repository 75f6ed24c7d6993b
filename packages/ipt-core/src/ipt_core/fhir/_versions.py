"""What makes a new version of a resource: checks of the request, the stamped meta, the rows.

Shared by the store's single writes, its set-based writes (`_many.py`) and the bulk loader.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import orjson

from ipt_core.fhir._writes import RowWrite
from ipt_core.fhir.errors import InvalidRequest, PreconditionFailed, ResourceNotFound
from ipt_core.fhir.index import index_entries
from ipt_core.fhir.model import Change, StoredResource, WriteCause
from ipt_core.fhir.registry import ResourceDefinition, definition_of
from ipt_core.fhir.validation import check_resource
from ipt_core.instants import format_instant

__all__ = [
    "check_body",
    "check_id",
    "check_update_id",
    "check_version",
    "definition_or_404",
    "deletion",
    "new_version",
    "with_meta",
]

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def definition_or_404(resource_type: str) -> ResourceDefinition:
    """Return the registry definition of `resource_type`; unknown types are a 404."""
    definition = definition_of(resource_type)
    if definition is None:
        raise ResourceNotFound(f"Resource type {resource_type!r} is not supported")
    return definition


def check_id(id_: str) -> str:
    """Return `id_` when it is a FHIR id; raise InvalidRequest (400) otherwise.

    FHIR ids are `[A-Za-z0-9\\-\\.]{1,64}` (https://hl7.org/fhir/R4/datatypes.html#id); `.`
    and `..` match that pattern but are path segments to every URL resolver, so they are
    refused too.
    """
    if not _ID.fullmatch(id_) or id_ in {".", ".."}:
        raise InvalidRequest(
            "A resource id is 1-64 letters, digits, '-' and '.', and not '.' or '..'",
            expression=("id",),
        )
    return id_


def check_body(
    resource: dict[str, Any], url_type: str, *, derived_from: dict[str, Any] | None = None
) -> ResourceDefinition:
    """Validate `resource` (once per write) as a resource of the URL's type; return its type.

    `derived_from`: the stored version the server derived the body from, so only what it
    changed is checked, without the fhir.resources model (`validation.check_resource`).
    """
    definition = definition_or_404(url_type)
    if resource.get("resourceType") != url_type:
        raise InvalidRequest(
            f"The resource is a {resource.get('resourceType')!r}, but the URL is for {url_type}",
            expression=("resourceType",),
        )
    check_resource(resource, derived_from=derived_from)
    return definition


def check_update_id(resource: dict[str, Any], resource_type: str, id_: str) -> None:
    """An update's body carries the id of its URL."""
    body_id = resource.get("id")
    if body_id is None:
        raise InvalidRequest(
            "The resource must carry its id in an update", expression=(f"{resource_type}.id",)
        )
    if body_id != id_:
        raise InvalidRequest(
            f"The resource's id {body_id!r} does not match the URL's id {id_!r}",
            expression=(f"{resource_type}.id",),
        )


def check_version(previous: StoredResource | None, if_match: int | None) -> None:
    """Raise PreconditionFailed (412) when `If-Match` does not name the current version."""
    if if_match is None:
        return
    if previous is None or previous.deleted:
        raise PreconditionFailed("If-Match was given but the resource does not exist")
    if previous.version_id != if_match:
        raise PreconditionFailed(
            f"If-Match names version {if_match}, but the current version is {previous.version_id}"
        )


def with_meta(resource: dict[str, Any], id_: str, version_id: int, now: datetime) -> dict[str, Any]:
    """Return `resource` as stored: its id, and meta with `versionId` and `lastUpdated`."""
    # resourceType, id and meta first: readers of raw JSON look there.
    client_meta = resource.get("meta", {})
    meta = {**client_meta, "versionId": str(version_id), "lastUpdated": format_instant(now)}
    rest = {k: v for k, v in resource.items() if k not in {"resourceType", "id", "meta"}}
    return {"resourceType": resource["resourceType"], "id": id_, "meta": meta, **rest}


def new_version(
    definition: ResourceDefinition,
    id_: str,
    resource: dict[str, Any],
    previous: StoredResource | None,
    now: datetime,
    cause: WriteCause,
    *,
    keep_index: bool = False,
) -> tuple[RowWrite, Change]:
    """The rows of the version after `previous` holding `resource`, and its listeners' Change.

    `keep_index`: `resource` has the index rows of `previous` (`index.same_index`), which
    then stay as stored instead of being extracted and written again.
    """
    version_id = 1 if previous is None else previous.version_id + 1
    body = with_meta(resource, id_, version_id, now)
    content = orjson.dumps(body).decode()
    stored = StoredResource(definition.type, id_, version_id, now, deleted=False, content=content)
    created = previous is None or previous.deleted
    action: Literal["create", "update"] = "create" if created else "update"
    index = None if keep_index and not created else index_entries(definition, body)
    row = RowWrite(stored, "POST" if created else "PUT", index)
    return row, Change(action, stored, body, previous, cause)


def deletion(previous: StoredResource, now: datetime, cause: WriteCause) -> tuple[RowWrite, Change]:
    """The rows of the deletion of `previous` (no content, no index rows), and its Change."""
    stored = StoredResource(
        previous.resource_type,
        previous.id,
        previous.version_id + 1,
        now,
        deleted=True,
        content=None,
    )
    return RowWrite(stored, "DELETE", {}), Change("delete", stored, None, previous, cause)
