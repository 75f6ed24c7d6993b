"""A PHQ-9 score as a FHIR Observation, and back (docs/fhir-mapping.md#phq-9-as-observation).

The total is `valueInteger` (LOINC 44261-6); item 9, thoughts of self-harm, is a component
(LOINC 44260-8). Senders may use an integer-valued `valueQuantity` instead; both read alike.
"""

from __future__ import annotations

from typing import Any, Final

from ipt_core.instants import format_instant, parse_optional_instant
from ipt_core.ipt import fhir_json
from ipt_core.ipt._goal import PHQ9_TOTAL_DISPLAY
from ipt_core.ipt._model import Phq9
from ipt_core.ipt.codes import LOINC, OBSERVATION_CATEGORY, PHQ9_ITEM9, PHQ9_TOTAL, SURVEY

PHQ9_MAX: Final = 27
ITEM9_MAX: Final = 3


def phq9_to_observation(phq9: Phq9) -> dict[str, Any]:
    """Build the Observation of a PHQ-9 total, with item 9 as a component when answered."""
    observation: dict[str, Any] = {"resourceType": "Observation"}
    if phq9.id:
        observation["id"] = phq9.id
    observation |= {
        "text": _narrative(phq9),
        "status": phq9.status,
        "category": [fhir_json.concept(OBSERVATION_CATEGORY, SURVEY, "Survey")],
        "code": {
            **fhir_json.concept(LOINC, PHQ9_TOTAL, PHQ9_TOTAL_DISPLAY),
            "text": "PHQ-9 total score",
        },
        "subject": fhir_json.reference(phq9.patient),
    }
    if phq9.goal_id:
        observation["focus"] = [fhir_json.reference(f"Goal/{phq9.goal_id}")]
    if phq9.encounter_id:
        observation["encounter"] = fhir_json.reference(f"Encounter/{phq9.encounter_id}")
    observation["effectiveDateTime"] = format_instant(phq9.effective)
    observation["valueInteger"] = phq9.total
    if phq9.item9 is not None:
        observation["component"] = [{"code": _item9_code(), "valueInteger": phq9.item9}]
    return observation


def phq9_from_observation(observation: dict[str, Any]) -> Phq9:
    """Read a PHQ-9 score from its Observation.

    Raises:
        pydantic.ValidationError: when the Observation has no valid total, Patient subject,
            effective time or final/amended/corrected status.
    """
    focus = (
        fhir_json.reference_id(ref, "Goal") for ref in fhir_json.as_list(observation.get("focus"))
    )
    return Phq9.model_validate(
        {
            "patient": fhir_json.relative_reference(observation.get("subject"), "Patient"),
            "total": integer_value(observation),
            "item9": phq9_item9(observation),
            "effective": parse_optional_instant(observation.get("effectiveDateTime")),
            "status": observation.get("status"),
            "id": observation.get("id"),
            "encounter_id": fhir_json.reference_id(observation.get("encounter"), "Encounter"),
            "goal_id": next((goal_id for goal_id in focus if goal_id), None),
        }
    )


def is_phq9_total(observation: dict[str, Any]) -> bool:
    """Whether an Observation's code is the PHQ-9 total score (LOINC 44261-6)."""
    return fhir_json.has_code(observation.get("code"), LOINC, PHQ9_TOTAL)


def phq9_total(observation: dict[str, Any]) -> int | None:
    """The PHQ-9 total of an Observation, or None when it holds no integer 0-27.

    Accepts `valueInteger` or a `valueQuantity` whose value is a whole number.
    """
    return _within(integer_value(observation), PHQ9_MAX)


def phq9_item9(observation: dict[str, Any]) -> int | None:
    """Item 9 (LOINC 44260-8) from an Observation's components, or None when absent or invalid.

    Reads a total Observation's component, or the value of a separate item 9 Observation.
    """
    if fhir_json.has_code(observation.get("code"), LOINC, PHQ9_ITEM9):
        return _within(integer_value(observation), ITEM9_MAX)
    for component in fhir_json.as_list(observation.get("component")):
        if isinstance(component, dict) and fhir_json.has_code(
            component.get("code"), LOINC, PHQ9_ITEM9
        ):
            return _within(integer_value(component), ITEM9_MAX)
    return None


def integer_value(element: dict[str, Any]) -> int | None:
    """The whole-number value of an Observation or component, or None.

    `valueInteger` must be a JSON integer; `valueQuantity.value` may be written `12` or `12.0`.
    """
    value = element.get("valueInteger")
    if value is None:
        value = fhir_json.as_dict(element.get("valueQuantity")).get("value")
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _within(value: int | None, maximum: int) -> int | None:
    return value if value is not None and 0 <= value <= maximum else None


def _item9_code() -> dict[str, Any]:
    return {**fhir_json.concept(LOINC, PHQ9_ITEM9), "text": "PHQ-9 item 9: thoughts of self-harm"}


def _narrative(phq9: Phq9) -> dict[str, Any]:
    facts = [("Total score", str(phq9.total)), ("Effective", format_instant(phq9.effective))]
    if phq9.item9 is not None:
        facts.insert(1, ("Item 9 (thoughts of self-harm)", str(phq9.item9)))
    return fhir_json.narrative("PHQ-9 total score", facts)
