"""Search-index extraction, FHIR date ranges and reference parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ipt_core.fhir.index import (
    DateEntry,
    NumberEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    index_entries,
    same_index,
)
from ipt_core.fhir.references import Target, parse_reference
from ipt_core.fhir.registry import REGISTRY, ResourceDefinition, SearchParam
from ipt_core.instants import date_range


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc,arg-type]


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2026", utc(2026, 1, 1), utc(2026, 12, 31, 23, 59, 59, 999999)),
        ("2026-02", utc(2026, 2, 1), utc(2026, 2, 28, 23, 59, 59, 999999)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999)),
        ("2026-01-05", utc(2026, 1, 5), utc(2026, 1, 5, 23, 59, 59, 999999)),
        ("2026-01-05T09:00:00Z", utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 0, 0, 999999)),
        ("2026-01-05T10:00:00+01:00", utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 0, 0, 999999)),
        (
            "2026-01-05T09:00:00.5Z",
            utc(2026, 1, 5, 9, 0, 0, 500000),
            utc(2026, 1, 5, 9, 0, 0, 500000),
        ),
    ],
)
def test_date_ranges(value: str, low: datetime, high: datetime) -> None:
    assert date_range(value) == (low, high)


@pytest.mark.parametrize("value", ["yesterday", "2026-1-5", "2026-01-05T25:00:00Z", ""])
def test_bad_dates_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"date|hour|month"):
        date_range(value)


@pytest.mark.parametrize(
    ("reference", "target"),
    [
        ("Patient/123", Target("Patient", "123")),
        ("http://ehr.example/fhir/Patient/123", Target("Patient", "123")),
        ("Patient/123/_history/2", Target("Patient", "123", "2")),
        (
            "urn:uuid:8e7b2a0c-1f3e-4f1b-9a53-0c3d3a1c2b11",
            Target(None, "urn:uuid:8e7b2a0c-1f3e-4f1b-9a53-0c3d3a1c2b11"),
        ),
    ],
)
def test_references(reference: str, target: Target) -> None:
    assert parse_reference(reference) == target


def test_contained_reference_has_no_target() -> None:
    assert parse_reference("#goal-1") is None


def test_encounter_index_entries() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
        "type": [
            {
                "coding": [{"system": "http://snomed.info/sct", "code": "443730003"}],
                "text": "IPT session",
            }
        ],
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-01-05T09:00:00Z"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.basedOn",
                "valueReference": {"reference": "CarePlan/c1"},
            }
        ],
    }
    entries = index_entries(REGISTRY["Encounter"], encounter)
    tokens = set(entries["search_token"])
    assert TokenEntry("status", None, "finished") in tokens
    assert TokenEntry("type", "http://snomed.info/sct", "443730003") in tokens
    assert TokenEntry("type", None, None, "IPT session") in tokens
    references = set(entries["search_reference"])
    assert references == {
        ReferenceEntry("patient", "Patient", "p1"),
        ReferenceEntry("subject", "Patient", "p1"),
        ReferenceEntry("careplan", "CarePlan", "c1"),
    }
    (date,) = entries["search_date"]
    assert date == DateEntry(
        "date",
        utc(2026, 1, 5, 9),
        datetime.max.replace(
            year=9999, month=12, day=30, hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC
        ),
    )


def test_patient_reference_param_skips_other_targets() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Group/g1"},
        "valueInteger": 9,
    }
    entries = index_entries(REGISTRY["Observation"], observation)
    assert ReferenceEntry("subject", "Group", "g1") in entries["search_reference"]
    assert all(e.param != "patient" for e in entries["search_reference"])
    assert entries["search_number"] == [NumberEntry("value-quantity", Decimal(9))]


def test_names_are_normalized() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Müller", "given": ["Zoë"]}]}
    strings = index_entries(REGISTRY["Patient"], patient)["search_string"]
    assert StringEntry("family", "muller", "Müller") in strings
    assert StringEntry("name", "zoe", "Zoë") in strings


_CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"},
    "subject": {"reference": "Patient/p1"},
    "code": {"text": "Depression"},
    "onsetDateTime": "2025-11-01",
    "note": [{"text": "first note"}],
}


@pytest.mark.parametrize(
    ("changes", "same"),
    [
        ({}, True),
        ({"note": [{"text": "another note"}]}, True),  # not searchable
        ({"extension": [{"url": "http://example.org/x", "valueString": "x"}]}, True),
        ({"code": {"text": "Grief"}}, False),
        ({"subject": {"reference": "Patient/p2"}}, False),
        ({"onsetDateTime": "2025-12-01"}, False),  # a choice element
        ({"onsetPeriod": {"start": "2025-12-01"}}, False),  # another type of the same choice
    ],
)
def test_same_index_compares_the_searchable_elements(
    changes: dict[str, object], same: bool
) -> None:
    condition = REGISTRY["Condition"]
    new = _CONDITION | changes
    assert same_index(condition, _CONDITION, new) is same
    assert (index_entries(condition, _CONDITION) == index_entries(condition, new)) or not same


def test_same_index_sees_searchable_extensions() -> None:
    link = "http://example.org/course"
    encounter = ResourceDefinition(
        "Encounter",
        {"careplan": SearchParam("careplan", "reference", (f"Encounter.extension({link})",), "")},
    )
    old = {"resourceType": "Encounter", "id": "e1", "status": "finished"}
    new = old | {"extension": [{"url": link, "valueReference": {"reference": "CarePlan/c1"}}]}
    assert not same_index(encounter, old, new)
    assert same_index(encounter, new, dict(new))


def test_same_index_never_trusts_meta() -> None:
    tagged = ResourceDefinition(
        "Patient", {"_tag": SearchParam("_tag", "token", ("Patient.meta.tag",), "")}
    )
    patient = {"resourceType": "Patient", "id": "p1", "meta": {"tag": [{"code": "a"}]}}
    assert not same_index(tagged, patient, dict(patient))


def test_same_index_follows_search_parameters_registered_anew() -> None:
    # The elements each type's parameters read are derived once per definition: a type
    # registered again with another parameter is compared on that parameter too.
    patient = {"resourceType": "Patient", "id": "p1", "active": True}
    inactive = patient | {"active": False}
    assert same_index(REGISTRY["Patient"], patient, inactive)  # `active` is searched by no one
    active = SearchParam("active", "token", ("Patient.active",), "")
    registered_anew = ResourceDefinition(
        "Patient", {**REGISTRY["Patient"].params, "active": active}
    )
    assert not same_index(registered_anew, patient, inactive)
    assert same_index(REGISTRY["Patient"], patient, inactive)
