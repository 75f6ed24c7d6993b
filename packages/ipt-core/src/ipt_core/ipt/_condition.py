"""Conditions IPT treats as FHIR Condition resources (docs/fhir-mapping.md#conditions).

A Condition carries its ICD-10-CM code and, where one exists, the SNOMED CT concept, as two
codings of one CodeableConcept, so EHRs that know either system can read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from ipt_core.ipt.codes import ICD10CM, SNOMED
from ipt_core.ipt.fhir_json import as_dict, codes_in, concept, narrative, reference

CLINICAL_STATUS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
RECURRENT_DEPRESSION_PREFIX: Final = "F33"


class TreatedCondition(NamedTuple):
    """A treated condition (docs/ipt-model.md#conditions-treated): name and SNOMED CT concept."""

    name: str
    snomed: str | None = None
    snomed_display: str | None = None


# ICD-10-CM code or category prefix -> condition; the longest matching prefix wins.
_TREATED: Final[dict[str, TreatedCondition]] = {
    "F32": TreatedCondition(
        "Major depressive disorder, single episode", "370143000", "Major depressive disorder"
    ),
    "F33": TreatedCondition(
        "Major depressive disorder, recurrent", "370143000", "Major depressive disorder"
    ),
    "F34.1": TreatedCondition("Dysthymia", "78667006", "Dysthymia"),
    "F31": TreatedCondition("Bipolar disorder", "13746004", "Bipolar disorder"),
    "F60.3": TreatedCondition(
        "Borderline personality disorder", "20010003", "Borderline personality disorder"
    ),
    "F06.31": TreatedCondition("Depression due to a known physiological condition"),
    "B20": TreatedCondition("HIV disease"),
    "Z63.6": TreatedCondition("Caregiver of a dependent relative needing care at home"),
    "F41.0": TreatedCondition("Panic disorder", "371631005", "Panic disorder"),
    "F50": TreatedCondition("Eating disorder", "72366004", "Eating disorder"),
    "Z63.0": TreatedCondition("Marital dispute"),
    "F43.81": TreatedCondition("Prolonged grief disorder"),
    **{
        f"F{n}": TreatedCondition("Substance use disorder", "66214007", "Substance abuse")
        for n in range(10, 20)
    },
}


def treated_condition(icd10cm: str) -> TreatedCondition | None:
    """The treated condition an ICD-10-CM code belongs to (`F33.1` → recurrent MDD), or None."""
    prefixes = [prefix for prefix in _TREATED if icd10cm.startswith(prefix)]
    return _TREATED[max(prefixes, key=len)] if prefixes else None


def condition_resource(
    patient: str, icd10cm: str, condition_id: str | None = None
) -> dict[str, Any]:
    """Build an active, confirmed Condition for an ICD-10-CM code, adding SNOMED CT if known.

    Args:
        patient: the patient's reference, e.g. `Patient/123`.
        icd10cm: the ICD-10-CM code, e.g. `F33.1`; a code outside the conditions table is kept
            as the only coding.
        condition_id: the id of the Condition, when it is known already.
    """
    treated = treated_condition(icd10cm)
    code: dict[str, Any] = {"coding": [{"system": ICD10CM, "code": icd10cm}]}
    if treated and treated.snomed:
        code["coding"].append(
            {"system": SNOMED, "code": treated.snomed, "display": treated.snomed_display}
        )
    name = treated.name if treated else f"ICD-10-CM {icd10cm}"
    code["text"] = name
    condition: dict[str, Any] = {"resourceType": "Condition"}
    if condition_id:
        condition["id"] = condition_id
    return condition | {
        "text": narrative(name, [("ICD-10-CM", icd10cm)]),
        "clinicalStatus": concept(CLINICAL_STATUS_SYSTEM, "active", "Active"),
        "verificationStatus": concept(VERIFICATION_STATUS_SYSTEM, "confirmed", "Confirmed"),
        "category": [concept(CONDITION_CATEGORY_SYSTEM, "problem-list-item", "Problem List Item")],
        "code": code,
        "subject": reference(patient),
    }


def icd10cm_codes(condition: dict[str, Any]) -> list[str]:
    """The ICD-10-CM codes of a Condition."""
    return [code for code in codes_in(condition.get("code"), ICD10CM) if isinstance(code, str)]


def is_recurrent_depression(conditions: Iterable[dict[str, Any]]) -> bool:
    """Whether a course's conditions include recurrent depression: ICD-10-CM `F33…`.

    Conditions recorded in error or refuted do not count.
    """
    return any(
        code.startswith(RECURRENT_DEPRESSION_PREFIX)
        for condition in conditions
        if not _withdrawn(condition)
        for code in icd10cm_codes(condition)
    )


def _withdrawn(condition: dict[str, Any]) -> bool:
    verification = codes_in(
        as_dict(condition).get("verificationStatus"), VERIFICATION_STATUS_SYSTEM
    )
    return bool({"entered-in-error", "refuted"} & set(verification))
