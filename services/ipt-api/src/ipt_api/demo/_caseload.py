"""The demo caseload: a dozen synthetic patients, one course story each (no real data).

Every name is invented. Each story is told relative to "now", so the caseload always looks
current: one course in every phase, the four problem areas, several of the conditions in
docs/ipt-model.md, no-shows, a maintenance course and PHQ-9 trajectories.

An attendance pattern has one letter per weekly (or, in maintenance, monthly) slot from the
course start: `A` attended, `N` no-show, `C` cancelled, `-` nothing recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from ipt_core.ipt import ProblemArea, SessionMode

__all__ = ["CASELOAD", "DEMO_PATIENT_SYSTEM", "THERAPISTS", "DemoCourse", "Ending"]

DEMO_PATIENT_SYSTEM: Final = "http://fhir.ipt-care.org/identifier/demo-patient"
Ending = Literal["draft", "active", "completed", "stopped", "on-hold", "maintenance"]

# (identifier, family, given): invented clinicians.
THERAPISTS: Final = (
    ("demo-t1", "Okafor", "Imani"),
    ("demo-t2", "Lindqvist", "Jonas"),
    ("demo-t3", "Reyes", "Marisol"),
)


@dataclass(frozen=True)
class DemoCourse:
    """One patient's course story.

    Attributes:
        weeks_ago: when the course started, in weeks before now.
        attendance: the weekly sessions since the start (see the module docstring).
        scores: PHQ-9 totals (with item 9) taken at attended sessions, by slot index.
        end_weeks_ago: when a completed, stopped or on-hold course changed status.
        maintenance: the monthly sessions of a maintenance course after completion.
    """

    key: str
    family: str
    given: str
    gender: Literal["female", "male", "other"]
    birth_date: str
    therapist: int
    conditions: tuple[str, ...]
    problem_areas: tuple[ProblemArea, ...]
    goals: tuple[str, ...]
    planned: int
    minutes: int
    weeks_ago: float
    baseline: int
    attendance: str
    ending: Ending
    scores: dict[int, tuple[int, int]] = field(default_factory=dict)
    end_weeks_ago: float | None = None
    mode: SessionMode = "in-person"
    practice: tuple[tuple[str, str], ...] = ()
    reason: str | None = None
    maintenance: str = ""


CASELOAD: Final = (
    DemoCourse(
        "demo-01", "Quill", "Avery", "female", "1979-04-12", 0, ("F43.81",), ("grief",),
        ("Visit my brother's grave with my sister",), 16, 50, 0.4, 17, "", "draft",
    ),
    DemoCourse(
        "demo-02", "Marlow", "Theo", "male", "1991-09-30", 1, ("F32.1",), ("role-transition",),
        ("Find one colleague to have lunch with",), 20, 60, 2.1, 15, "AA", "active",
        scores={1: (14, 0)},
    ),
    DemoCourse(
        "demo-03", "Castellano", "Ines", "female", "1985-02-17", 2, ("F33.1", "Z63.0"),
        ("role-dispute",), ("Agree a weekly time to talk with my husband",), 20, 60, 8.2, 19,
        "AAANAAAA", "active", scores={3: (16, 0), 7: (12, 0)},
        practice=(("Tell my husband what I need on weekends", "completed"),
                  ("Ask my mother-in-law for help once", "in-progress")),
    ),
    DemoCourse(
        "demo-04", "Adeyemi", "Kofi", "male", "1968-11-02", 0, ("F34.1",),
        ("interpersonal-deficits",), ("Join the walking group on Saturdays",), 16, 50, 10.1, 14,
        "AAAACAAAAA", "active", scores={4: (13, 0), 9: (10, 0)},
        practice=(("Call an old friend", "completed"), ("Go to the choir", "not-started")),
    ),
    DemoCourse(
        "demo-05", "Brennan", "Maeve", "female", "1957-06-23", 1, ("F32.2",), ("grief",),
        ("Sort my mother's letters with my daughter",), 12, 50, 11.1, 22, "AAAAAAAAAA", "active",
        scores={3: (18, 1), 6: (13, 0), 9: (9, 0)},
    ),
    DemoCourse(
        "demo-06", "Nakamura", "Ren", "other", "1988-01-05", 2, ("F06.31", "B20"),
        ("role-transition",), ("Tell one friend about my diagnosis",), 12, 50, 12.1, 16,
        "AAAAAAAAAAAA", "active", scores={4: (11, 0), 8: (8, 0), 11: (6, 0)}, mode="virtual",
    ),
    DemoCourse(
        "demo-07", "Okonkwo", "Ada", "female", "1990-08-14", 0, ("F32.0",), ("role-dispute",),
        ("Set one shared rule with my flatmate",), 16, 60, 26.0, 16, "AAAAAANAAAAAAAAAAA",
        "completed", scores={5: (11, 0), 11: (7, 0), 17: (4, 0)}, end_weeks_ago=7.5,
    ),
    DemoCourse(
        "demo-08", "Haddad", "Samir", "male", "1962-03-29", 1, ("F33.2",), ("grief",),
        ("Return to Friday prayers with my cousin",), 16, 60, 44.0, 21, "AAAAAAAAAAAAAAAA",
        "maintenance", scores={5: (16, 0), 10: (11, 0), 15: (8, 0)}, end_weeks_ago=27.5,
        maintenance="AAANAA",
    ),
    DemoCourse(
        "demo-09", "Fitzgerald", "Rowan", "male", "1999-12-01", 2, ("F60.3",),
        ("interpersonal-deficits",), ("Keep one friendship going for a month",), 20, 50, 10.0, 18,
        "ANANA", "stopped", scores={4: (17, 1)}, end_weeks_ago=3.0,
        reason="Moved to another city; referred to a local service",
    ),
    DemoCourse(
        "demo-10", "Varga", "Lena", "female", "2001-05-19", 0, ("F50.2",), ("role-transition",),
        ("Eat lunch with classmates twice a week",), 16, 50, 7.0, 15, "AAAA", "on-hold",
        scores={3: (13, 0)}, end_weeks_ago=2.0, reason="Inpatient stay for her eating disorder",
    ),
    DemoCourse(
        "demo-11", "Osei", "Kwame", "male", "1975-10-10", 1, ("F41.0", "F32.1"),
        ("grief", "role-transition"), ("Visit my father's village with my son",), 20, 60, 9.0, 20,
        "AAAAANN", "active", scores={4: (17, 0)},
    ),
    DemoCourse(
        "demo-12", "Sato", "Mika", "female", "1983-07-07", 2, ("F31.32",), ("role-dispute",),
        ("Talk with my sister without shouting",), 20, 50, 3.1, 18, "AAA", "active",
        scores={2: (17, 1)}, mode="virtual",
    ),
)  # fmt: skip
