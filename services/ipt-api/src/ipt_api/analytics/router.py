"""HTTP routes of analytics: the status snapshot, a course's status history, trends.

Authorization is the same as the event feed's and the dashboards': CarePlan search. The
snapshot and the trends span every patient, so `patient/` tokens are refused them (like the
feed); a course's history answers 404 outside the token's compartment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.analytics.history import status_history
from ipt_api.analytics.snapshot import StatusFilters, current_feed_position, status_page
from ipt_api.analytics.trends import Interval, trends
from ipt_api.authz import authorize
from ipt_api.deps import ConnectionDep, PrincipalDep, PublicBaseDep
from ipt_api.fhir.paging import decode_cursor, encode_cursor
from ipt_api.principal import Principal
from ipt_api.status.access import DashboardFilters, ReadCourse
from ipt_core.fhir.errors import InvalidRequest, NotAuthorized
from ipt_core.instants import parse_instant

__all__ = ["analytics_router"]

analytics_router = APIRouter(prefix="/ipt/v1", tags=["Analytics"])
_MAX_BUCKETS: Final = 400
_CURSOR_KEYS: Final = frozenset({"after", "feed_after"})


class StatusSnapshotPage(BaseModel):
    """One page of the status snapshot and the feed position the whole snapshot matches."""

    items: list[dict[str, Any]] = Field(
        description="`course_id`, `patient`, `therapist`, `status` (its fields and `version`)"
    )
    feed_after: int = Field(
        description="Read `/ipt/v1/events?after=` (or SSE `Last-Event-ID`) from here after "
        "applying every page; skip status changes whose `version` you already have"
    )
    next: str | None = Field(description="The next page (absolute URL), null on the last")


@analytics_router.get(
    "/statuses", summary="Every course's stored status, paged, with the feed position it matches"
)
async def read_statuses(
    request: Request,
    principal: PrincipalDep,
    public_base: PublicBaseDep,
    therapist: str | None = None,
    organization: str | None = None,
    phase: str | None = None,
    course_type: Annotated[str | None, Query(description="acute | maintenance")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page: str | None = None,
) -> StatusSnapshotPage:
    """Snapshot then stream: apply all pages, then follow the feed from `feed_after`."""
    _authorize_all_patients(principal, "statuses")
    filters = StatusFilters(therapist, organization, phase, course_type)
    after: str | None = None
    if page is not None:
        position = decode_cursor(page, keys=_CURSOR_KEYS, bound_to=filters.signature())
        after, feed_after = str(position["after"]), int(position["feed_after"])
    engine: AsyncEngine = request.app.state.database.engine
    # Autocommit on purpose, whatever the request connections do: each statement takes its
    # own snapshot, so the page is read strictly after the feed position (snapshot.py).
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        if page is None:
            feed_after = await current_feed_position(conn)
        items = await status_page(conn, filters, after=after, limit=limit)
    next_url = None
    if len(items) == limit:
        cursor = encode_cursor(
            {"after": items[-1]["course_id"], "feed_after": feed_after},
            bound_to=filters.signature(),
        )
        next_url = _url(request, public_base, cursor)
    return StatusSnapshotPage(items=items, feed_after=feed_after, next=next_url)


_HISTORY = "Every stored version of a course's status, oldest first"
_TRENDS = "Courses by phase and engagement, attendance and outcome rates per interval"


@analytics_router.get(
    "/courses/{course_id}/status/history", tags=["Course status"], summary=_HISTORY
)
async def read_status_history(
    course_id: ReadCourse,
    conn: ConnectionDep,
    after_version: Annotated[int, Query(ge=0, description="Versions after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The course's status versions with `computed_at` and `cause` (created, facts, time)."""
    versions = await status_history(conn, course_id, after_version=after_version, limit=limit)
    return {"course_id": course_id, "versions": versions}


@analytics_router.get("/dashboard/trends", tags=["Dashboards"], summary=_TRENDS)
async def dashboard_trends(
    conn: ConnectionDep,
    principal: PrincipalDep,
    from_: Annotated[str, Query(alias="from", description="An instant (inclusive)")],
    to: Annotated[str, Query(description="An instant (exclusive)")],
    filters: DashboardFilters,
    interval: Interval = "week",
) -> dict[str, Any]:
    """Aggregate the status history per interval (intervals start at UTC midnight/Monday/1st)."""
    _authorize_all_patients(principal, "trends")
    start, end = _instant("from", from_), _instant("to", to)
    if end <= start:
        raise InvalidRequest("`to` must be after `from`", expression=("to",))
    if (end - start) / _LENGTH[interval] > _MAX_BUCKETS:
        raise InvalidRequest(f"At most {_MAX_BUCKETS} intervals", expression=("interval",))
    items = await trends(
        conn,
        interval=interval,
        start=start,
        end=end,
        therapist=filters.therapist,
        organization=filters.organization,
    )
    return {"interval": interval, "intervals": items}


_LENGTH: Final = {"day": timedelta(days=1), "week": timedelta(weeks=1), "month": timedelta(days=28)}


def _instant(name: str, value: str) -> datetime:
    try:
        return parse_instant(value).astimezone(UTC)
    except ValueError:
        raise InvalidRequest(f"{name} is not an instant", expression=(name,)) from None


def _authorize_all_patients(principal: Principal, name: str) -> None:
    authorize(principal, "CarePlan", "search", names=[name])
    if principal.compartment is not None:
        raise NotAuthorized(f"The {name} span every patient: not available with patient/ scopes")


def _url(request: Request, public_base: str, cursor: str) -> str:
    base = public_base.rstrip("/")  # the configured base, or an allowed Host (deps)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    return f"{base}{request.url.path}?{urlencode([*params, ('page', cursor)])}"
