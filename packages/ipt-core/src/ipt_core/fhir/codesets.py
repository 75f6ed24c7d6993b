"""Required code bindings of R4 that the fhir.resources models do not check.

fhir.resources validates structure and types but accepts any code, so `CarePlan.status =
"bogus"` would be stored. Each entry binds a path (dotted, through lists) to the codes of its
required R4 value set.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CODEABLE_BINDINGS", "REQUIRED_CODES"]

_NAME_USE = ("usual", "official", "temp", "nickname", "anonymous", "old", "maiden")
_IDENTIFIER_USE = ("usual", "official", "temp", "secondary", "old")
_CONTACT_SYSTEM = ("phone", "fax", "email", "pager", "url", "sms", "other")
_CONTACT_USE = ("home", "work", "temp", "old", "mobile")
_GENDER = ("male", "female", "other", "unknown")
_NARRATIVE = ("generated", "extensions", "additional", "empty")
_COMPARATOR = ("<", "<=", ">=", ">")
_ADDRESS_USE = ("home", "work", "temp", "old", "billing")
_ADDRESS_TYPE = ("postal", "physical", "both")
# Encounter.status and Encounter.statusHistory.status share one value set.
_ENCOUNTER_STATUS = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)

# Bindings every resource type shares (data types that appear anywhere).
_COMMON: Mapping[str, tuple[str, ...]] = {
    "text.status": _NARRATIVE,
    "identifier.use": _IDENTIFIER_USE,
}

# Bindings of the person resources (names, contacts, addresses).
_PERSON: Mapping[str, tuple[str, ...]] = {
    **_COMMON,
    "gender": _GENDER,
    "name.use": _NAME_USE,
    "telecom.system": _CONTACT_SYSTEM,
    "telecom.use": _CONTACT_USE,
    "address.use": _ADDRESS_USE,
    "address.type": _ADDRESS_TYPE,
}

REQUIRED_CODES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "Patient": {
        **_PERSON,
        "contact.gender": _GENDER,
        "link.type": ("replaced-by", "replaces", "refer", "seealso"),
    },
    "Practitioner": _PERSON,
    "Condition": {**_COMMON},
    "CarePlan": {
        **_COMMON,
        "status": (
            "draft",
            "active",
            "on-hold",
            "revoked",
            "completed",
            "entered-in-error",
            "unknown",
        ),
        "intent": ("proposal", "plan", "order", "option"),
        "activity.detail.status": (
            "not-started",
            "scheduled",
            "in-progress",
            "on-hold",
            "completed",
            "cancelled",
            "stopped",
            "unknown",
            "entered-in-error",
        ),
        "activity.detail.kind": (
            "Appointment",
            "CommunicationRequest",
            "DeviceRequest",
            "MedicationRequest",
            "NutritionOrder",
            "Task",
            "ServiceRequest",
            "VisionPrescription",
        ),
    },
    "Goal": {
        **_COMMON,
        "lifecycleStatus": (
            "proposed",
            "planned",
            "accepted",
            "active",
            "on-hold",
            "completed",
            "cancelled",
            "entered-in-error",
            "rejected",
        ),
    },
    "Encounter": {
        **_COMMON,
        "status": _ENCOUNTER_STATUS,
        "statusHistory.status": _ENCOUNTER_STATUS,
        "location.status": ("planned", "active", "reserved", "completed"),
    },
    "Appointment": {
        **_COMMON,
        "status": (
            "proposed",
            "pending",
            "booked",
            "arrived",
            "fulfilled",
            "cancelled",
            "noshow",
            "entered-in-error",
            "checked-in",
            "waitlist",
        ),
        "participant.required": ("required", "optional", "information-only"),
        "participant.status": ("accepted", "declined", "tentative", "needs-action"),
    },
    "Observation": {
        **_COMMON,
        "status": (
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ),
        "valueQuantity.comparator": _COMPARATOR,
    },
}

_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# Required bindings on CodeableConcepts: codings of the bound system must use its codes.
CODEABLE_BINDINGS: Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "Condition": {
        "clinicalStatus": (
            _CLINICAL,
            ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
        ),
        "verificationStatus": (
            _VERIFICATION,
            (
                "unconfirmed",
                "provisional",
                "differential",
                "confirmed",
                "refuted",
                "entered-in-error",
            ),
        ),
    },
}
