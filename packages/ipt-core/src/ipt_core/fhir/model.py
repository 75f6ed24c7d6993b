"""What the store keeps and returns: stored resources and the changes writes make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "Change",
    "ResourcePut",
    "StoredResource",
    "VersionedWrite",
    "WriteCause",
    "WriteResult",
]


class WriteCause(StrEnum):
    """Why a resource is written: listeners decide by cause, never by diffing content.

    docs/architecture.md#write-path lists what each listener does for each cause.
    """

    CLIENT = "client"
    """A client's FHIR interaction or domain-API use case (the default)."""
    STATUS_WRITEBACK = "status-writeback"
    """The status engine writing a derived value back (phase extension, Goal achievement)."""
    EHR_PULL = "ehr-pull"
    """A resource copied in from an EHR by the sync worker."""
    SEED = "seed"
    """Demo or fixture data loaded by a command, not by a client."""


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored; `content` is the exact JSON served on reads."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str | None

    @property
    def etag(self) -> str:
        """The weak ETag of this version, `W/"n"`."""
        return f'W/"{self.version_id}"'

    @property
    def last_modified(self) -> str:
        """The HTTP date of this version, for `Last-Modified`."""
        return format_datetime(self.last_updated, usegmt=True)

    @property
    def path(self) -> str:
        """The relative URL of this version, `Type/id/_history/n`."""
        return f"{self.resource_type}/{self.id}/_history/{self.version_id}"


@dataclass(frozen=True)
class WriteResult:
    """The outcome of a write: the version now current and whether it was a creation."""

    stored: StoredResource
    created: bool
    changed: bool = True  # False when a conditional create found an existing resource


@dataclass(frozen=True)
class Change:
    """A write, told to listeners inside its transaction (projections, outbox, queue)."""

    action: Literal["create", "update", "delete"]
    stored: StoredResource
    resource: dict[str, Any] | None  # the new content; None after a delete
    previous: StoredResource | None
    cause: WriteCause = WriteCause.CLIENT


@dataclass(frozen=True)
class VersionedWrite:
    """An update of `resource_type/id` to `body`, only if its current version is `if_match`.

    `ResourceStore.update_many` writes a batch of these set-based and skips (writes nothing
    for) those whose resource moved on meanwhile or was deleted.

    `derived_from_stored`: `body` is the stored version `if_match` with a value the server
    derived set in it (the status engine's write-backs), so only the elements it changed are
    validated, without the fhir.resources model (`validation.check_resource`,
    `derived_from`; docs/architecture.md, "Status engine"). Only a write with the cause
    `STATUS_WRITEBACK` may say so: never a body from a client or an EHR.
    """

    resource_type: str
    id: str
    body: dict[str, Any]
    if_match: int
    derived_from_stored: bool = False


@dataclass(frozen=True)
class ResourcePut:
    """One create or update of a set-based write (`ResourceStore.put_many`).

    `create`: a create with the id the server chose (`id`; the body's own id is ignored, as
    R4 says); else an update (or a create with a client id) of `id`, whose body carries that
    id, honouring `if_match` as `ResourceStore.update` does.
    """

    resource_type: str
    id: str
    body: dict[str, Any]
    if_match: int | None = None
    create: bool = False
