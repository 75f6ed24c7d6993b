"""The IPT model: courses, sessions and PHQ-9 scores, their FHIR R4 mapping and rules.

- Domain model (`TreatmentOutline`, `Course`, `Session`, `Phq9`, ...): frozen pydantic models.
- Mapping: course <-> CarePlan + Goals, session <-> Encounter / Appointment, PHQ-9 <->
  Observation, treated condition -> Condition (docs/fhir-mapping.md).
- Readers of any stored CarePlan: `is_ipt_course`, `course_type`, `planned_sessions`, ...
- Rules on FHIR writes: `rule_violations` returns `RuleViolation`s (a 422 when not empty).
- Conformance resources served read-only: `conformance_resources`.

Codes and code systems live in `ipt_core.ipt.codes`; FHIR JSON element helpers in
`ipt_core.ipt.fhir_json`.
"""

from ipt_core.ipt._careplan import course_from_fhir, course_to_careplan
from ipt_core.ipt._careplan_facts import (
    based_on_course_id,
    course_phase,
    course_type,
    detail_has,
    is_ipt_course,
    outcome_references,
    planned_sessions,
    problem_areas,
    session_timing,
    with_course_phase,
)
from ipt_core.ipt._condition import (
    TreatedCondition,
    condition_resource,
    icd10cm_codes,
    is_recurrent_depression,
    treated_condition,
)
from ipt_core.ipt._conformance import conformance_resource, conformance_resources
from ipt_core.ipt._goal import (
    course_goals,
    goal_achievement,
    interpersonal_goal,
    interpersonal_goal_from_fhir,
    is_symptom_goal,
    planned_end,
    symptom_goal,
    with_goal_achievement,
)
from ipt_core.ipt._model import (
    Course,
    InterpersonalGoal,
    Phq9,
    PracticeAssignment,
    Session,
    TreatmentOutline,
)
from ipt_core.ipt._observation import (
    is_phq9_total,
    phq9_from_observation,
    phq9_item9,
    phq9_to_observation,
    phq9_total,
)
from ipt_core.ipt._rules import (
    RuleViolation,
    careplan_violations,
    observation_violations,
    related_course_id,
    rule_violations,
    session_violations,
)
from ipt_core.ipt._session import (
    psychotherapy_cpt,
    session_course_link,
    session_from_appointment,
    session_from_encounter,
    session_to_appointment,
    session_to_encounter,
)
from ipt_core.ipt.codes import (
    CadenceCode,
    CarePlanStatus,
    CourseType,
    GoalAchievement,
    Phase,
    Phq9Status,
    PracticeStatus,
    ProblemArea,
    RecordedOutcome,
    SessionMode,
)

__all__ = [
    "CadenceCode",
    "CarePlanStatus",
    "Course",
    "CourseType",
    "GoalAchievement",
    "InterpersonalGoal",
    "Phase",
    "Phq9",
    "Phq9Status",
    "PracticeAssignment",
    "PracticeStatus",
    "ProblemArea",
    "RecordedOutcome",
    "RuleViolation",
    "Session",
    "SessionMode",
    "TreatedCondition",
    "TreatmentOutline",
    "based_on_course_id",
    "careplan_violations",
    "condition_resource",
    "conformance_resource",
    "conformance_resources",
    "course_from_fhir",
    "course_goals",
    "course_phase",
    "course_to_careplan",
    "course_type",
    "detail_has",
    "goal_achievement",
    "icd10cm_codes",
    "interpersonal_goal",
    "interpersonal_goal_from_fhir",
    "is_ipt_course",
    "is_phq9_total",
    "is_recurrent_depression",
    "is_symptom_goal",
    "observation_violations",
    "outcome_references",
    "phq9_from_observation",
    "phq9_item9",
    "phq9_to_observation",
    "phq9_total",
    "planned_end",
    "planned_sessions",
    "problem_areas",
    "psychotherapy_cpt",
    "related_course_id",
    "rule_violations",
    "session_course_link",
    "session_from_appointment",
    "session_from_encounter",
    "session_timing",
    "session_to_appointment",
    "session_to_encounter",
    "session_violations",
    "symptom_goal",
    "treated_condition",
    "with_course_phase",
    "with_goal_achievement",
]
