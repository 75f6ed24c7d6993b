"""Search SQL compiled once per shape binds each search's own values, in the right places.

For every query the cached path (the shape's SQL, this query's values put into its slots)
must give exactly the SQL and arguments that compiling the query's own statement gives.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select

from ipt_core.fhir.search import SearchQuery, SortPlan, page_statement, parse_search, sort_plan
from ipt_core.fhir.search._page import count_statement
from ipt_core.fhir.search._statements import _compile_now, _probe, _sql

SEARCHES = [
    ("Encounter", [("subject", "Patient/p1"), ("_count", "20")]),
    ("Encounter", [("subject", "Patient/p2"), ("_count", "20")]),
    ("Encounter", [("subject", "p3"), ("_count", "20")]),
    ("Encounter", [("subject", "Patient/p4,Group/g1")]),
    ("Encounter", [("patient", "Patient/p5"), ("_sort", "-date")]),
    ("Encounter", [("patient", "Patient/p6"), ("_sort", "-date"), ("status", "finished")]),
    ("Observation", [("patient", "Patient/p7"), ("code", "http://loinc.org|44261-6")]),
    ("Observation", [("patient", "Patient/p8"), ("code", "http://loinc.org|44260-8")]),
    ("Observation", [("patient", "Patient/p9"), ("code", "44261-6")]),
    ("Observation", [("patient", "Patient/p9"), ("code", "|44261-6")]),
    ("Observation", [("patient", "Patient/p9"), ("code", "http://loinc.org|")]),
    ("Observation", [("code", "http://loinc.org|44261-6,http://snomed.info/sct|1")]),
    ("Observation", [("code", "x" * 400)]),  # a long code is bound as its index key
    ("Observation", [("code", "a"), ("code", "b"), ("category", "survey")]),
    ("Patient", [("_id", "a,b")]),
    ("Patient", [("_id", "p1")]),
    ("Patient", [("_id", "x" * 400)]),  # an id is bound as given, never as an index key
    ("Encounter", [("_id", "e1"), ("subject", "Patient/p1")]),
]


@pytest.mark.parametrize("kind", ["page", "count"])
def test_cached_shapes_bind_each_search_s_own_values(kind: str) -> None:
    for resource_type, params in [*SEARCHES, *SEARCHES]:  # the second round hits the cache
        query = parse_search(resource_type, params)
        plan = sort_plan(query)

        def build(q: SearchQuery, plan: SortPlan = plan) -> Select[Any]:
            return page_statement(q, plan, None) if kind == "page" else count_statement(q)

        assert _probe(query) is not None, params
        assert _sql(kind, query, build) == _compile_now(build(query)), params


def test_shapes_differ_when_the_sql_does() -> None:
    with_system = parse_search("Observation", [("code", "http://loinc.org|1")])
    without = parse_search("Observation", [("code", "1")])
    no_system = parse_search("Observation", [("code", "|1")])
    keys = {_probe(q)[0] for q in (with_system, without, no_system)}  # type: ignore[index]
    assert len(keys) == 3


def test_values_the_builders_transform_are_not_cached() -> None:
    for resource_type, params in (
        ("Patient", [("name", "smith")]),
        ("Patient", [("_id:not", "a")]),
        ("Patient", [("_lastUpdated", "ge2025")]),
        ("Patient", [("birthdate", "ge2000")]),
        ("Patient", [("gender:not", "male")]),
        ("Encounter", [("subject:Patient.name", "x")]),
        ("Encounter", [("subject", "Patient/p1"), ("date", "ge2025")]),
    ):
        query = parse_search(resource_type, params)
        assert query.clauses, params
        assert _probe(query) is None, params
