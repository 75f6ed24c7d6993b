"""SQL conditions of search clauses over the search-index tables.

Each clause becomes one `EXISTS` over its index table, keyed by (resource_type, param, value…)
so the planner probes the lookup index; the values of a clause are OR-ed inside that EXISTS.
A condition is built for a *subject*: the resource type and the SQL expression of its id, so
the same code serves the searched resource, a chained target, and a `_has` source.

A search bounded by Patients (`patient_clause`) reads that clause first, as a materialized
CTE of the Patients' resources: no plan, custom or generic, can then start from a value
thousands of resources share (the PHQ-9 code), so its prepared statement can be reused
(docs/architecture.md, "Search plans fit the values").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, false, not_, or_, select, true

from ipt_core.db.schema import (
    resource,
    search_date,
    search_number,
    search_reference,
    search_string,
    search_token,
)
from ipt_core.fhir.index import normalize_string, token_key
from ipt_core.fhir.search._model import (
    ChainClause,
    Clause,
    DateValue,
    HasClause,
    MissingClause,
    NumberValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    Value,
    ValueClause,
)

__all__ = ["Subject", "clause_condition", "patient_clause", "patients_condition"]

_TABLE_OF_TYPE: dict[str, Table] = {
    "token": search_token,
    "string": search_string,
    "date": search_date,
    "reference": search_reference,
    "number": search_number,
    "quantity": search_number,
}


@dataclass(frozen=True)
class Subject:
    """The resources a condition is about: their type and the SQL expression of their id."""

    resource_type: str
    id: ColumnElement[str]
    last_updated: ColumnElement[Any] | None = None  # set when the `resource` row is in scope


def clause_condition(clause: Clause, subject: Subject) -> ColumnElement[bool]:
    """Return the SQL condition that `subject` matches `clause`."""
    if isinstance(clause, ChainClause):
        return _chain(clause, subject)
    if isinstance(clause, HasClause):
        return _has(clause, subject)
    name = clause.param.name
    if name in {"_id", "_lastUpdated"}:
        return _resource_column(clause, subject)
    table = _TABLE_OF_TYPE[clause.param.type]
    keyed = [
        table.c.resource_type == subject.resource_type,
        table.c.resource_id == subject.id,
        table.c.param == name,
    ]
    if isinstance(clause, MissingClause):
        present = exists().where(*keyed)
        return not_(present) if clause.missing else present
    if clause.modifier == "text":
        matched = or_(*(_token_text(v) for v in clause.values if isinstance(v, StringValue)))
    else:
        matched = or_(*(_value(table, clause.modifier, v) for v in clause.values))
    found = exists().where(*keyed, matched)
    return not_(found) if clause.modifier == "not" else found


def patient_clause(clauses: tuple[Clause, ...]) -> ValueClause | None:
    """The first clause naming only Patients (plain references): it bounds the search.

    A bare id counts when the parameter can only point at a Patient (`Observation?patient=`).
    """
    for clause in clauses:
        if (
            isinstance(clause, ValueClause)
            and clause.param.type == "reference"
            and clause.modifier is None
            and clause.values
            and all(_names_a_patient(clause, v) for v in clause.values)
        ):
            return clause
    return None


def _names_a_patient(clause: ValueClause, value: Value) -> bool:
    if not isinstance(value, ReferenceValue):
        return False
    return value.type == "Patient" or (value.type is None and clause.param.targets == ("Patient",))


def patients_condition(clause: ValueClause, subject: Subject) -> ColumnElement[bool]:
    """`clause` (a `patient_clause`) as `id IN (a materialized CTE of the Patients' rows)`."""
    r = search_reference
    rows = (
        select(r.c.resource_id)
        .where(
            r.c.resource_type == subject.resource_type,
            r.c.param == clause.param.name,
            or_(*(_value(r, None, value) for value in clause.values)),
        )
        .cte("patient_rows")
        .prefix_with("MATERIALIZED")
    )
    return subject.id.in_(select(rows.c.resource_id))


def _resource_column(clause: Clause, subject: Subject) -> ColumnElement[bool]:
    if isinstance(clause, MissingClause):
        return false() if clause.missing else true()
    assert isinstance(clause, ValueClause)
    if clause.param.name == "_id":
        ids = [v.code for v in clause.values if isinstance(v, TokenValue) and v.code]
        matched = subject.id.in_(ids)
        return not_(matched) if clause.modifier == "not" else matched
    if subject.last_updated is not None:
        column = subject.last_updated
        return or_(*(_date(column, column, v) for v in clause.values if isinstance(v, DateValue)))
    row = resource.alias("chained_resource")
    inner = _resource_column(clause, Subject(subject.resource_type, row.c.id, row.c.last_updated))
    return exists().where(
        row.c.resource_type == subject.resource_type, row.c.id == subject.id, inner
    )


def _value(table: Table, modifier: str | None, value: Value) -> ColumnElement[bool]:
    if isinstance(value, TokenValue):
        return _token(value)
    if isinstance(value, StringValue):
        return _string(modifier, value)
    if isinstance(value, DateValue):
        return _date(table.c.low, table.c.high, value)
    if isinstance(value, NumberValue):
        return _number(value)
    return _reference(value)


def _token(value: TokenValue) -> ColumnElement[bool]:
    t = search_token
    conditions = []
    if value.code is not None:
        conditions.append(t.c.code == token_key(value.code))
    if value.match_system:
        system = t.c.system
        conditions.append(
            system.is_(None) if value.system is None else system == token_key(value.system)
        )
    return and_(*conditions)


def _token_text(value: StringValue) -> ColumnElement[bool]:
    # Text of a code: starts any word of a Coding.display or CodeableConcept.text.
    display = search_token.c.display
    return or_(
        display.istartswith(value.text, autoescape=True),
        display.icontains(" " + value.text, autoescape=True),
    )


def _string(modifier: str | None, value: StringValue) -> ColumnElement[bool]:
    s = search_string
    if modifier == "exact":
        return s.c.exact == value.text
    normalized = normalize_string(value.text)
    if modifier == "contains":
        return s.c.value.contains(normalized, autoescape=True)
    return s.c.value.startswith(normalized, autoescape=True)


_DATE_RULES: dict[str, Callable[[Any, Any, DateValue], ColumnElement[bool]]] = {
    # Index rows are the inclusive range [low, high] a value stands for (FHIR precision rules).
    "eq": lambda lo, hi, v: and_(lo >= v.low, hi <= v.high),
    "ne": lambda lo, hi, v: or_(lo < v.low, hi > v.high),
    "gt": lambda lo, hi, v: hi > v.high,
    "lt": lambda lo, hi, v: lo < v.low,
    "ge": lambda lo, hi, v: or_(hi > v.high, and_(lo >= v.low, hi <= v.high)),
    "le": lambda lo, hi, v: or_(lo < v.low, and_(lo >= v.low, hi <= v.high)),
    "sa": lambda lo, hi, v: lo > v.high,
    "eb": lambda lo, hi, v: hi < v.low,
    "ap": lambda lo, hi, v: and_(lo <= v.high, hi >= v.low),
}


def _date(low: Any, high: Any, value: DateValue) -> ColumnElement[bool]:
    return _DATE_RULES[value.prefix](low, high, value)


def _number(value: NumberValue) -> ColumnElement[bool]:
    n = search_number.c
    rules: dict[str, ColumnElement[bool]] = {
        "eq": and_(n.value >= value.low, n.value < value.high),
        "ne": or_(n.value < value.low, n.value >= value.high),
        "gt": n.value > value.value,
        "sa": n.value > value.value,
        "lt": n.value < value.value,
        "eb": n.value < value.value,
        "ge": n.value >= value.value,
        "le": n.value <= value.value,
        "ap": and_(n.value >= value.low, n.value <= value.high),
    }
    conditions = [rules[value.prefix]]
    if value.system is not None:
        conditions.append(n.system == value.system)
    if value.code is not None:
        conditions.append(n.code == value.code)
    return and_(*conditions)


def _reference(value: ReferenceValue) -> ColumnElement[bool]:
    r = search_reference.c
    if value.type is None:
        return r.target_id == token_key(value.id)
    return and_(r.target_id == token_key(value.id), r.target_type == value.type)


def _chain(clause: ChainClause, subject: Subject) -> ColumnElement[bool]:
    ref = search_reference.alias("chain")
    per_type = [
        and_(
            ref.c.target_type == target,
            clause_condition(inner, Subject(target, ref.c.target_id)),
        )
        for target, inner in clause.inner.items()
    ]
    return exists().where(
        ref.c.resource_type == subject.resource_type,
        ref.c.resource_id == subject.id,
        ref.c.param == clause.param.name,
        or_(*per_type),
    )


def _has(clause: HasClause, subject: Subject) -> ColumnElement[bool]:
    ref = search_reference.alias("has")
    return exists().where(
        ref.c.resource_type == clause.source_type,
        ref.c.param == clause.reference.name,
        ref.c.target_type == subject.resource_type,
        ref.c.target_id == subject.id,
        clause_condition(clause.inner, Subject(clause.source_type, ref.c.resource_id)),
    )
