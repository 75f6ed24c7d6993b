"""Session <-> Encounter / Appointment (docs/fhir-mapping.md): round trip, CPT, course link."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipt_core.ipt import (
    Session,
    psychotherapy_cpt,
    session_course_link,
    session_from_appointment,
    session_from_encounter,
    session_to_appointment,
    session_to_encounter,
)
from ipt_core.ipt.codes import APPOINTMENT_BASED_ON_EXTENSION, ENCOUNTER_BASED_ON_EXTENSION
from tests.unit.ipt.support import START, FhirCheck, fhir_ids, instants


def sessions(outcomes: list[str], minutes: st.SearchStrategy[int | None]) -> Any:
    return st.builds(
        Session,
        patient=fhir_ids.map("Patient/{}".format),
        start=instants,
        minutes=minutes,
        outcome=st.sampled_from(outcomes),
        mode=st.sampled_from(["in-person", "virtual"]),
        course_id=st.none() | fhir_ids,
        therapist=st.none() | fhir_ids.map("PractitionerRole/{}".format),
        encounter_id=st.none() | fhir_ids,
        appointment_id=st.none() | fhir_ids,
    )


encounter_sessions = sessions(["attended", "cancelled"], st.none() | st.integers(1, 240))
appointment_sessions = sessions(
    ["attended", "no-show", "cancelled", "booked"], st.integers(1, 240)
).map(lambda session: session.model_copy(update={"encounter_id": None}))


def wire(resource: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(resource)))


def attended(**changes: Any) -> Session:
    fields = {"patient": "Patient/p1", "start": START, "outcome": "attended", "course_id": "cp-1"}
    return Session.model_validate(fields | changes)


@given(session=encounter_sessions)
def test_session_round_trips_through_encounter(session: Session) -> None:
    assert session_from_encounter(wire(session_to_encounter(session))) == session


@given(session=appointment_sessions)
def test_session_round_trips_through_appointment(session: Session) -> None:
    assert session_from_appointment(wire(session_to_appointment(session))) == session


@settings(deadline=None)
@given(encounter_session=encounter_sessions, appointment_session=appointment_sessions)
def test_every_session_resource_is_valid_r4(
    encounter_session: Session, appointment_session: Session, valid_r4: FhirCheck
) -> None:
    valid_r4(session_to_encounter(encounter_session))
    valid_r4(session_to_appointment(appointment_session))


@pytest.mark.parametrize(
    ("minutes", "cpt"),
    [
        (None, None),
        (15, None),
        (16, "90832"),
        (37, "90832"),
        (38, "90834"),
        (52, "90834"),
        (53, "90837"),
        (60, "90837"),
    ],
)
def test_cpt_code_follows_session_length(minutes: int | None, cpt: str | None) -> None:
    assert psychotherapy_cpt(minutes) == cpt


def test_attended_session_maps_to_a_finished_encounter() -> None:
    encounter = session_to_encounter(attended(minutes=50, appointment_id="ap-1", mode="virtual"))

    assert encounter["status"] == "finished"
    assert encounter["class"]["code"] == "VR"
    assert [t["coding"][0]["code"] for t in encounter["type"]] == ["443730003", "90834"]
    assert encounter["period"] == {"start": "2026-01-05T09:00:00Z", "end": "2026-01-05T09:50:00Z"}
    assert encounter["length"] == {
        "value": 50,
        "unit": "min",
        "system": "http://unitsofmeasure.org",
        "code": "min",
    }
    assert encounter["appointment"] == [{"reference": "Appointment/ap-1"}]
    assert encounter["extension"] == [
        {"url": ENCOUNTER_BASED_ON_EXTENSION, "valueReference": {"reference": "CarePlan/cp-1"}}
    ]


def test_short_session_carries_no_cpt_code() -> None:
    encounter = session_to_encounter(attended(minutes=10))
    assert [t["coding"][0]["code"] for t in encounter["type"]] == ["443730003"]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("booked", "booked"),
        ("attended", "fulfilled"),
        ("no-show", "noshow"),
        ("cancelled", "cancelled"),
    ],
)
def test_appointment_status_follows_outcome(outcome: str, status: str) -> None:
    appointment = session_to_appointment(attended(outcome=outcome))

    assert appointment["status"] == status
    assert appointment["serviceType"][0]["coding"][0]["code"] == "443730003"
    assert appointment["minutesDuration"] == 60
    assert appointment["participant"] == [
        {"actor": {"reference": "Patient/p1"}, "required": "required", "status": "accepted"}
    ]
    assert session_course_link(appointment) == "cp-1"


@pytest.mark.parametrize("outcome", ["no-show", "booked"])
def test_only_an_appointment_records_a_missed_or_booked_session(outcome: str) -> None:
    with pytest.raises(ValueError, match="Appointment"):
        session_to_encounter(attended(outcome=outcome))


@pytest.mark.parametrize("status", ["planned", "in-progress", "entered-in-error"])
def test_unrecorded_encounter_is_no_session(status: str) -> None:
    encounter = session_to_encounter(attended()) | {"status": status}
    with pytest.raises(ValueError, match="not a recorded IPT session"):
        session_from_encounter(encounter)


def test_course_link_reads_absolute_references_and_ignores_other_extensions() -> None:
    encounter = {
        "resourceType": "Encounter",
        "extension": [
            {"url": APPOINTMENT_BASED_ON_EXTENSION, "valueReference": {"reference": "CarePlan/x"}},
            {
                "url": ENCOUNTER_BASED_ON_EXTENSION,
                "valueReference": {"reference": "https://ehr.example/fhir/CarePlan/cp-7"},
            },
        ],
    }
    assert session_course_link(encounter) == "cp-7"
    assert session_course_link({"resourceType": "Encounter"}) is None
    assert session_course_link({"resourceType": "Observation", "extension": []}) is None


def test_ehr_encounter_reads_length_from_its_period() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "ehr-e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-01-05T10:00:00+01:00", "end": "2026-01-05T10:45:00+01:00"},
    }

    session = session_from_encounter(encounter)

    assert (session.start, session.minutes, session.mode) == (START, 45, "in-person")
    assert session.course_id is None
