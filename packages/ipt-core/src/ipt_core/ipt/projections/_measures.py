"""The measure projection: one `ipt_measure` row per PHQ-9 total or item-9 Observation.

PHQ-9 values belong to courses by patient and time only (docs/fhir-mapping.md, "PHQ-9 of a
course"), so a change to a patient's values concerns every course of that patient (the window
is the status engine's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._rows import measure_row

__all__ = ["project_measure", "project_measures"]


async def project_measure(
    conn: AsyncConnection, observation_id: str, observation: dict[str, Any] | None
) -> set[str]:
    """Bring an Observation's measure row up to date; return the courses it concerns.

    Args:
        conn: the write's connection.
        observation_id: the Observation id.
        observation: its current content; None when it was deleted.
    """
    old_patient = await repo.measure_patient(conn, observation_id)
    row = measure_row(observation) if observation is not None else None
    if row is not None:
        await repo.upsert(conn, "ipt_measure", row)
    elif old_patient is not None:
        await repo.delete_measure(conn, observation_id)
    patients = {old_patient, row["patient_id"] if row is not None else None}
    return await repo.course_ids_of_patients(conn, (p for p in patients if p))


async def project_measures(
    conn: AsyncConnection, observations: Sequence[tuple[str, dict[str, Any] | None]]
) -> list[set[str]]:
    """`project_measure` of many Observations (each at most once), set-based.

    A measure row depends on its Observation alone, so the rows of a run of Observation
    writes are read, written and deleted with one statement each. Returns the courses each
    one concerns, in order.
    """
    ids = [observation_id for observation_id, _ in observations]
    old_patients = await repo.measure_patients(conn, ids)
    rows = [measure_row(o) if o is not None else None for _, o in observations]
    await repo.upsert_many(conn, "ipt_measure", [row for row in rows if row is not None])
    gone = [i for i, row in zip(ids, rows, strict=True) if row is None and i in old_patients]
    await repo.delete_measures(conn, gone)
    patients = [
        {old_patients.get(i), row["patient_id"] if row is not None else None} - {None}
        for i, row in zip(ids, rows, strict=True)
    ]
    windows = await repo.course_windows_of(conn, {p for found in patients for p in found if p})
    return [{w.id for p in found if p for w in windows.get(p, ())} for found in patients]
