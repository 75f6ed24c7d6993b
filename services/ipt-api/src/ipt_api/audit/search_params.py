"""The search parameters of `GET /fhir/AuditEvent`, parsed into an `AuditFilter`.

Supported: `date` (with prefixes eq, ge, gt, le, lt), `agent` (token subject or client id),
`entity` (`Type/id` or `Type`), `patient` (`Patient/id` or id), `subtype`, `action`,
`outcome`, `type` (only `rest` is recorded), `_count`. Anything else is a 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Final

from ipt_core.audit import AuditFilter
from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.registry import SearchParam
from ipt_core.fhir.search import DateValue, parse_values

__all__ = ["CONTROL_PARAMS", "audit_filter"]

CONTROL_PARAMS: Final = frozenset({"_count", "_page", "_format"})
_DATE = SearchParam("date", "date", ("AuditEvent.recorded",), "When the event was recorded")
_TICK = timedelta(microseconds=1)


def audit_filter(params: Sequence[tuple[str, str]]) -> AuditFilter:
    """Return the filter `params` describe.

    Raises:
        InvalidRequest: for an unknown parameter or a malformed value.
    """
    where = AuditFilter()
    for name, value in params:
        if name in CONTROL_PARAMS:
            continue
        values = tuple(v.strip() for v in value.split(",") if v.strip())
        if name == "date":
            where = _dates(where, value)
        elif name == "agent":
            where = replace(where, agents=(*where.agents, *values))
        elif name == "entity":
            where = replace(where, entities=(*where.entities, *(_entity(v) for v in values)))
        elif name == "patient":
            patients = tuple(v.removeprefix("Patient/") for v in values)
            where = replace(where, patients=(*where.patients, *patients))
        elif name == "subtype":
            where = replace(where, subtypes=(*where.subtypes, *(v.split("|")[-1] for v in values)))
        elif name == "action":
            where = replace(where, actions=(*where.actions, *values))
        elif name == "outcome":
            if not all(v.isdigit() for v in values):
                raise InvalidRequest("outcome takes 0, 4, 8 or 12", expression=("outcome",))
            where = replace(where, outcomes=(*where.outcomes, *(int(v) for v in values)))
        elif name == "type":
            if any(v.split("|")[-1] != "rest" for v in values):
                where = replace(where, subtypes=("-none-",))  # only `rest` events are recorded
        else:
            raise InvalidRequest(
                f"Unknown AuditEvent search parameter {name!r}", expression=(name,)
            )
    return where


def _entity(value: str) -> tuple[str, str | None]:
    type_, _, id_ = value.partition("/")
    if not type_:
        raise InvalidRequest("entity takes Type/id or Type", expression=("entity",))
    return type_, id_ or None


def _dates(where: AuditFilter, raw: str) -> AuditFilter:
    for value in parse_values(_DATE, raw):
        assert isinstance(value, DateValue)
        since, until = {
            "eq": (value.low, value.high + _TICK),
            "ge": (value.low, None),
            "gt": (value.high + _TICK, None),
            "le": (None, value.high + _TICK),
            "lt": (None, value.low),
        }.get(value.prefix, (None, None))
        if since is None and until is None:
            raise InvalidRequest(
                f"date prefix {value.prefix} is not supported here", expression=("date",)
            )
        if since is not None and (where.since is None or since > where.since):
            where = replace(where, since=since)
        if until is not None and (where.until is None or until < where.until):
            where = replace(where, until=until)
    return where
