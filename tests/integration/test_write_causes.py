"""A write carries its cause to every listener (docs/architecture.md#write-path)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.fhir.model import Change, WriteCause
from ipt_core.fhir.store import ResourceStore

PATIENT: dict[str, Any] = {"resourceType": "Patient", "gender": "female"}


class Recorder:
    """A listener that remembers what it was told."""

    def __init__(self) -> None:
        """Nothing heard yet."""
        self.heard: list[tuple[str, WriteCause]] = []

    async def resource_written(self, conn: AsyncConnection, change: Change) -> None:
        """Remember the action and the cause."""
        self.heard.append((change.action, change.cause))


async def test_each_write_tells_its_cause_defaulting_to_the_stores(db: AsyncEngine) -> None:
    recorder = Recorder()
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=[recorder])
        created = await store.create("Patient", PATIENT)
        patient_id = created.stored.id
        body = {**PATIENT, "id": patient_id, "gender": "male"}
        await store.update("Patient", patient_id, body, cause=WriteCause.EHR_PULL)
        await store.patch(
            "Patient", patient_id, lambda r: r | {"active": True}, cause=WriteCause.SEED
        )
        engine_store = ResourceStore(conn, listeners=[recorder], cause=WriteCause.STATUS_WRITEBACK)
        await engine_store.conditional_delete("Patient", f"_id={patient_id}")
    assert recorder.heard == [
        ("create", WriteCause.CLIENT),
        ("update", WriteCause.EHR_PULL),
        ("update", WriteCause.SEED),
        ("delete", WriteCause.STATUS_WRITEBACK),
    ]
