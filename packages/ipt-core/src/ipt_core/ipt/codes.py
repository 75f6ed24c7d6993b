"""Code systems and codes of the IPT model (docs/ipt-model.md#codes), named once for the project."""

from collections.abc import Mapping
from typing import Final, Literal, get_args

CANONICAL_BASE: Final = "http://fhir.ipt-care.org"

SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
CPT: Final = "http://www.ama-assn.org/go/cpt"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CAREPLAN_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"

PROBLEM_AREA_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/ipt-problem-area"
COURSE_TYPE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/ipt-course-type"
PHASE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/ipt-phase"
ACTIVITY_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/ipt-activity"
COURSE_IDENTIFIER_SYSTEM: Final = f"{CANONICAL_BASE}/identifier/course"
PHASE_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/ipt-phase"

ENCOUNTER_BASED_ON_EXTENSION: Final = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.basedOn"
)
APPOINTMENT_BASED_ON_EXTENSION: Final = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.basedOn"
)

IPT_THERAPY: Final = "443730003"  # SNOMED: interpersonal psychotherapy
PSYCHOTHERAPY: Final = "75516001"  # SNOMED: psychotherapy (generic parent)
PHQ9_TOTAL: Final = "44261-6"
PHQ9_PANEL: Final = "44249-1"
PHQ9_ITEM9: Final = "44260-8"
GAD7_TOTAL: Final = "70274-6"
PROGRESS_NOTE: Final = "34904-3"
CPT_INTAKE: Final = "90791"
CPT_PSYCHOTHERAPY: Final = ("90832", "90834", "90837")  # 16-37, 38-52, >=53 minutes
CPT_GROUP: Final = "90853"
ASSESS_PLAN: Final = "assess-plan"
SOCIAL_PRACTICE: Final = "social-practice"
SURVEY: Final = "survey"
IN_PERSON: Final = "AMB"
VIRTUAL: Final = "VR"

# The literals of the IPT model, each defined here once (docs/ipt-model.md#codes).
ProblemArea = Literal["grief", "role-transition", "role-dispute", "interpersonal-deficits"]
CourseType = Literal["acute", "maintenance"]
CarePlanStatus = Literal[
    "draft", "active", "on-hold", "completed", "revoked", "entered-in-error", "unknown"
]
"""`CarePlan.status`, the FHIR request-status of a course (not its computed status)."""
CadenceCode = Literal["weekly", "monthly"]
"""The cadence a clinician picks at enrolment (the status engine's `Cadence` is an interval)."""
SessionOutcome = Literal["attended", "no-show", "cancelled", "booked", "none"]
"""What a session came to; `none` when nothing decides yet (docs/status-rules.md)."""
RecordedOutcome = Literal["attended", "no-show", "cancelled", "booked"]
"""The outcome a clinician records for a session (every `SessionOutcome` but `none`)."""

# The statuses that record a session's outcome, and which (docs/fhir-mapping.md#session-outcomes);
# any other status records none. An Encounter's decides over its Appointment's.
ENCOUNTER_OUTCOMES: Final[Mapping[str, RecordedOutcome]] = {
    "finished": "attended",
    "cancelled": "cancelled",
}
APPOINTMENT_OUTCOMES: Final[Mapping[str, RecordedOutcome]] = {
    "fulfilled": "attended",
    "noshow": "no-show",
    "cancelled": "cancelled",
    "booked": "booked",
}
SessionMode = Literal["in-person", "virtual"]
PracticeStatus = Literal["not-started", "in-progress", "completed", "cancelled"]
Phq9Status = Literal["final", "amended", "corrected"]
GoalAchievement = Literal[
    "in-progress",
    "improving",
    "worsening",
    "no-change",
    "achieved",
    "sustaining",
    "not-achieved",
    "no-progress",
    "not-attainable",
]
# The `ipt-phase` CodeSystem: the domain model and the status engine share this one list.
Phase = Literal[
    "intake",
    "initial",
    "middle",
    "termination",
    "acute-complete",
    "maintenance",
    "completed",
    "stopped",
    "on-hold",
]
# The computed status's own values (docs/status-rules.md#fields).
Engagement = Literal["on-track", "overdue", "at-risk", "lapsed"]
Severity = Literal["minimal", "mild", "moderate", "moderately-severe", "severe"]
GoalStatus = Literal["in-progress", "achieved", "improving", "worsening", "no-change"]
"""The `achievementStatus` the status engine derives (a subset of `GoalAchievement`)."""

PROBLEM_AREAS: Final = get_args(ProblemArea)
COURSE_TYPES: Final = get_args(CourseType)
PHASES: Final = get_args(Phase)
