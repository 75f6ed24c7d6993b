"""Reads by id and version: what a read answers, on the store's connection or on the driver.

`ResourceStore.read`/`vread` and `DriverReads` (the API's read pool) give the same answers and
the same errors; the helpers here say what a row read means: never written (404), deleted
(410), no such version (404), a version that is a deletion (410).
"""

from __future__ import annotations

from typing import Any

from ipt_core.fhir import _repository as rows
from ipt_core.fhir._versions import definition_or_404
from ipt_core.fhir.errors import ResourceGone, ResourceNotFound
from ipt_core.fhir.model import StoredResource

__all__ = ["DriverReads", "live", "live_version", "version_number"]


class DriverReads:
    """The store's `read` and `vread` on a pooled asyncpg connection: the API's hottest path.

    Same checks, same answers, same errors as `ResourceStore.read` and `vread`. A read by id
    needs one primary-key statement and no transaction, and checking out a SQLAlchemy
    connection for it cost more CPU than the statement (ipt_core/db/read_pool.py;
    docs/architecture.md, "Read path").
    """

    def __init__(self, driver: Any) -> None:
        """Read on `driver`, an asyncpg connection in autocommit."""
        self.driver = driver

    async def read(self, resource_type: str, id_: str) -> StoredResource:
        """Return the current version. Raises ResourceNotFound, or ResourceGone if deleted."""
        definition_or_404(resource_type)
        stored = await rows.current_on_driver(self.driver, resource_type, id_)
        return live(stored, resource_type, id_)

    async def vread(self, resource_type: str, id_: str, version_id: str) -> StoredResource:
        """Return one version. Raises ResourceNotFound, or ResourceGone for a deletion."""
        number = version_number(resource_type, id_, version_id)
        stored = await rows.version_on_driver(self.driver, resource_type, id_, number)
        return live_version(stored, resource_type, id_, version_id)


def live(stored: StoredResource | None, resource_type: str, id_: str) -> StoredResource:
    """The current version read, or the read's error: never written (404), deleted (410)."""
    if stored is None:
        raise ResourceNotFound(f"{resource_type}/{id_} is not known")
    if stored.deleted:
        raise ResourceGone(f"{resource_type}/{id_} was deleted", expression=())
    return stored


def version_number(resource_type: str, id_: str, version_id: str) -> int:
    """A vread's version as a number; a served type's, else 404."""
    definition_or_404(resource_type)
    if not version_id.isdigit():
        raise ResourceNotFound(f"{resource_type}/{id_} has no version {version_id!r}")
    return int(version_id)


def live_version(
    stored: StoredResource | None, resource_type: str, id_: str, version_id: str
) -> StoredResource:
    """The version read, or the vread's error: no such version (404), a deletion (410)."""
    if stored is None:
        raise ResourceNotFound(f"{resource_type}/{id_} has no version {version_id}")
    if stored.deleted:
        raise ResourceGone(f"Version {version_id} of {resource_type}/{id_} is a deletion")
    return stored
