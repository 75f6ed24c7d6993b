"""Starting courses: enrolment from an intake outline, and a maintenance contract after one.

Everything a course starts with (Patient when new, Conditions, Goals, CarePlan, baseline
PHQ-9) is written through the store in the request's one transaction: any refusal rolls all
of it back.
"""

from __future__ import annotations

from urllib.parse import urlencode

from ipt_api.courses.errors import UnknownReference
from ipt_api.courses.schemas import (
    EnrolmentRequest,
    GoalInput,
    MaintenanceRequest,
    PatientInput,
)
from ipt_api.courses.service._course_io import load_course, require_status
from ipt_core.fhir.errors import BusinessRuleViolated, ResourceGone, ResourceNotFound
from ipt_core.fhir.store import ResourceStore
from ipt_core.ids import new_id
from ipt_core.ipt import (
    Course,
    InterpersonalGoal,
    Phq9,
    ProblemArea,
    TreatmentOutline,
    condition_resource,
    course_to_careplan,
    interpersonal_goal,
    phq9_to_observation,
    symptom_goal,
)
from ipt_core.ipt.fhir_json import narrative

__all__ = ["enrol", "start_maintenance"]


async def enrol(store: ResourceStore, request: EnrolmentRequest) -> str:
    """Create a draft course from an intake outline; return its id.

    Raises:
        UnknownReference: when the patient or therapist reference names nothing.
        BusinessRuleViolated: when a goal's problem area is not one of the course's.
    """
    _check_goal_areas(request.interpersonal_goals, request.problem_areas)
    patient = await _patient(store, request.patient)
    if request.therapist is not None:
        await _require_existing(store, request.therapist, "therapist")
    conditions = []
    for code in request.conditions:
        created = await store.create("Condition", condition_resource(patient, code))
        conditions.append(f"Condition/{created.stored.id}")
    outline = TreatmentOutline(
        patient=patient,
        therapist=request.therapist,
        conditions=tuple(conditions),
        problem_areas=tuple(request.problem_areas),
        planned_sessions=request.planned_sessions,
        session_minutes=request.session_minutes,
        start=request.start,
        interpersonal_goals=tuple(_goals(request.interpersonal_goals)),
        identifier=request.identifier or new_id(),
    )
    course = await _create_course(store, outline, status="draft")
    if (baseline := request.baseline_phq9) is not None:
        phq9 = Phq9(
            patient=patient,
            total=baseline.total,
            item9=baseline.item9,
            effective=baseline.effective or request.start,
            goal_id=course.symptom_goal_id,
        )
        await store.create("Observation", phq9_to_observation(phq9))
    return course.id


async def start_maintenance(
    store: ResourceStore, acute_id: str, request: MaintenanceRequest
) -> str:
    """Start an active maintenance course (monthly) based on a completed acute course.

    Raises:
        BusinessRuleViolated: when `acute_id` is a maintenance course, or the maintenance
            course would start before the acute course ended.
        CourseStateConflict: when the acute course is not completed yet.
    """
    acute = (await load_course(store, acute_id)).course
    if acute.course_type != "acute":
        raise BusinessRuleViolated(
            f"CarePlan/{acute_id} is a maintenance course; maintenance continues an acute course",
            expression=("CarePlan.basedOn",),
        )
    require_status(acute, {"completed"}, "start maintenance before the acute course is completed")
    start = request.start or store.clock()
    if acute.end is not None and start < acute.end:
        raise BusinessRuleViolated(
            "A maintenance course starts when the acute course has ended", expression=("start",)
        )
    if request.therapist is not None:
        await _require_existing(store, request.therapist, "therapist")
    _check_goal_areas(request.interpersonal_goals, acute.problem_areas)
    outline = TreatmentOutline(
        patient=acute.patient,
        therapist=request.therapist or acute.therapist,
        conditions=acute.conditions,
        problem_areas=acute.problem_areas,
        course_type="maintenance",
        planned_sessions=request.months,
        session_minutes=request.session_minutes or acute.session_minutes,
        cadence="monthly",
        start=start,
        interpersonal_goals=tuple(_goals(request.interpersonal_goals)),
        based_on=acute_id,
        identifier=new_id(),
    )
    # The maintenance contract is agreed in the acute course's termination phase: active now.
    return (await _create_course(store, outline, status="active")).id


async def _create_course(store: ResourceStore, outline: TreatmentOutline, *, status: str) -> Course:
    """Write the Goals, then the CarePlan that references them; return the stored course."""
    draft = Course.from_outline(outline, course_id="new")
    symptom = await store.create("Goal", symptom_goal(draft))
    goal_ids = []
    for goal in outline.interpersonal_goals:
        created = await store.create("Goal", interpersonal_goal(goal, outline.patient))
        goal_ids.append(created.stored.id)
    course = Course.from_outline(
        outline,
        course_id="new",
        symptom_goal_id=symptom.stored.id,
        interpersonal_goal_ids=goal_ids,
    ).model_copy(update={"status": status})
    created = await store.create("CarePlan", course_to_careplan(course))
    return course.model_copy(update={"id": created.stored.id})


async def _patient(store: ResourceStore, given: PatientInput) -> str:
    if given.reference is not None:
        await _require_existing(store, given.reference, "patient.reference")
        return given.reference
    assert given.identifier is not None  # the schema requires one of the two
    system, value = given.identifier.system, given.identifier.value
    patient: dict[str, object] = {
        "resourceType": "Patient",
        "text": narrative("Patient", [("Identifier", f"{system}|{value}")]),
        "identifier": [{"system": system, "value": value}],
    }
    if given.family or given.given:
        name: dict[str, object] = {"family": given.family} if given.family else {}
        patient["name"] = [name | ({"given": given.given} if given.given else {})]
    if given.gender:
        patient["gender"] = given.gender
    if given.birth_date:
        patient["birthDate"] = given.birth_date.isoformat()
    criteria = urlencode({"identifier": f"{system}|{value}"})
    created = await store.create("Patient", patient, if_none_exist=criteria)
    return f"Patient/{created.stored.id}"


async def _require_existing(store: ResourceStore, reference: str, field: str) -> None:
    resource_type, _, id_ = reference.partition("/")
    try:
        await store.read(resource_type, id_)
    except (ResourceNotFound, ResourceGone):
        raise UnknownReference(f"{reference} does not exist", expression=(field,)) from None


def _goals(goals: list[GoalInput]) -> list[InterpersonalGoal]:
    return [InterpersonalGoal(text=goal.text, problem_area=goal.problem_area) for goal in goals]


def _check_goal_areas(
    goals: list[GoalInput], areas: tuple[ProblemArea, ...] | list[ProblemArea]
) -> None:
    for index, goal in enumerate(goals):
        if goal.problem_area not in areas:
            raise BusinessRuleViolated(
                f"Goal {goal.text!r} is under {goal.problem_area}, which is not a problem area "
                "of the course",
                expression=(f"interpersonal_goals[{index}].problem_area",),
            )
