"""The synthetic caseload every benchmark seeds: deterministic, valid R4, IPT-shaped.

One course is a Patient, its IPT CarePlan, weekly session Encounters and PHQ-9 Observations,
with random-looking but reproducible ids (uuid5), so two servers can be seeded with exactly
the same resources and driven by the same request scripts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ipt_core.ipt import codes

__all__ = ["course_resources", "ident"]

_NAMESPACE = uuid.UUID("6f1c1d1e-5b7a-4c55-9d1e-2b0f5e8f3a10")
_START = datetime(2024, 1, 1, tzinfo=UTC)


def ident(kind: str, course: int, n: int = 0) -> str:
    """Deterministic, random-looking ids, like the store's uuid4s."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}-{course}-{n}"))


def course_resources(course: int, *, sessions: int = 20, phq9: int = 5) -> Iterator[dict[str, Any]]:
    """One IPT course: Patient, CarePlan, `sessions` weekly Encounters, `phq9` PHQ-9 totals."""
    patient, plan = ident("patient", course), ident("careplan", course)
    subject = {"reference": f"Patient/{patient}"}
    start = _START + timedelta(hours=course % 17_000)
    yield {
        "resourceType": "Patient",
        "id": patient,
        "identifier": [{"system": "urn:bench:mrn", "value": f"MRN{course}"}],
        "name": [{"family": f"Family{course % 997}", "given": ["Alex"]}],
        "gender": "female" if course % 2 else "male",
        "birthDate": "1980-05-17",
    }
    yield _careplan(course, plan, subject, start)
    for n in range(sessions):
        yield _encounter(course, n, plan, subject, start + timedelta(weeks=n))
    step = max(1, sessions // phq9) if phq9 else 1
    for n in range(phq9):
        yield {
            "resourceType": "Observation",
            "id": ident("observation", course, n),
            "status": "final",
            "category": [
                {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": codes.SURVEY}]}
            ],
            "code": {"coding": [{"system": codes.LOINC, "code": codes.PHQ9_TOTAL}]},
            "subject": subject,
            "encounter": {"reference": f"Encounter/{ident('encounter', course, n * step)}"},
            "effectiveDateTime": (start + timedelta(weeks=n * step)).isoformat(),
            "valueInteger": max(0, 20 - n * 3),
        }


def _careplan(course: int, plan: str, subject: dict[str, str], start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": plan,
        "status": "active",
        "intent": "plan",
        "identifier": [{"system": codes.COURSE_IDENTIFIER_SYSTEM, "value": f"C{course}"}],
        "category": [
            {"coding": [{"system": codes.SNOMED, "code": codes.IPT_THERAPY}]},
            {"coding": [{"system": codes.COURSE_TYPE_SYSTEM, "code": "acute"}]},
            {"coding": [{"system": codes.PROBLEM_AREA_SYSTEM, "code": "grief"}]},
        ],
        "subject": subject,
        "period": {"start": start.isoformat()},
    }


def _encounter(
    course: int, n: int, plan: str, subject: dict[str, str], begin: datetime
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": ident("encounter", course, n),
        "extension": [
            {
                "url": codes.ENCOUNTER_BASED_ON_EXTENSION,
                "valueReference": {"reference": f"CarePlan/{plan}"},
            }
        ],
        "status": "finished",
        "class": {"system": codes.ACT_CODE, "code": codes.IN_PERSON},
        "type": [
            {
                "coding": [
                    {"system": codes.SNOMED, "code": codes.IPT_THERAPY},
                    {"system": codes.CPT, "code": "90834"},
                ]
            }
        ],
        "subject": subject,
        "period": {
            "start": begin.isoformat(),
            "end": (begin + timedelta(minutes=50)).isoformat(),
        },
    }
