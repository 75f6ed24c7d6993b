"""HTTP routes of the ordered feed: a page (with long-poll) and a Server-Sent Events stream.

The cursor is the feed position the relay gives each event as it publishes it: resuming
after the last position seen never skips an event, even one whose transaction committed late.
Waiting readers do not poll: they sleep until the relay's NOTIFY on `ipt_feed` wakes them
(`FeedSignal`, one LISTEN connection per process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.authz import authorize
from ipt_api.deps import PrincipalDep
from ipt_api.errors import outage_log
from ipt_api.principal import Principal
from ipt_core.backoff import backoff_ceiling_s
from ipt_core.db.faults import database_fault
from ipt_core.events import FeedEntry, FeedSignal, read_feed
from ipt_core.fhir.errors import InvalidRequest, NotAuthorized

__all__ = ["events_router"]

events_router = APIRouter(prefix="/ipt/v1", tags=["Events"])
MAX_POSITION: Final = 2**63 - 1  # feed positions are PostgreSQL bigints
_OUTAGE_WAIT_S: Final = 5.0  # longest wait between looks while the database is down
_KEEPALIVE_S: Final = 15.0  # an SSE comment line keeps idle proxies from closing the stream
After = Annotated[
    int, Query(ge=0, le=MAX_POSITION, description="Read after this feed position (the last seen)")
]
Types = Annotated[
    str | None,
    Query(description="Comma-separated event types to return (default: all)"),
]


class EventPage(BaseModel):
    """A page of the feed: CloudEvent envelopes, oldest first, and the cursor to go on from."""

    events: list[dict[str, Any]]
    next_after: int = Field(description="Pass as `after` to read on")


@events_router.get("/events", summary="Events after a feed position (long-poll with `wait`)")
async def read_events(
    request: Request,
    principal: PrincipalDep,
    after: After = 0,
    types: Types = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for events when none are there")
    ] = 0,
) -> EventPage:
    """Return published events after `after`; with `wait`, hold the request until one comes."""
    _authorize(principal)
    type_list = _split(types)
    expires_at: float | None = getattr(request.state, "token_expires_at", None)
    if expires_at is not None:  # a held request answers by the time its token expires
        wait = max(min(wait, expires_at - time.time()), 0)
    deadline = time.monotonic() + wait
    while True:
        wake = _signal(request).current()  # before the read: a publication meanwhile wakes us
        entries = await _page(_engine(request), after, type_list, limit)
        remaining = deadline - time.monotonic()
        if entries or remaining <= 0:
            break
        await _signal(request).wait(wake, remaining)
    return EventPage(
        events=[entry.envelope for entry in entries],
        next_after=entries[-1].position if entries else after,
    )


@events_router.get(
    "/events/stream",
    summary="Events as Server-Sent Events; resumes from Last-Event-ID",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    principal: PrincipalDep,
    after: After = 0,
    types: Types = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Stream events as they are published; each SSE `id` is the event's feed position."""
    _authorize(principal)
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_POSITION:
            raise InvalidRequest("Last-Event-ID must be a feed position (a number)")
        after = int(last_event_id)
    expires_at: float | None = getattr(request.state, "token_expires_at", None)
    return StreamingResponse(
        _server_sent_events(request, after, _split(types), expires_at),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _server_sent_events(
    request: Request, after: int, types: Sequence[str], expires_at: float | None
) -> AsyncIterator[str]:
    """The stream; it ends when the bearer token expires (`expires_at`, epoch seconds).

    A token is checked once, when the request arrives: a stream that outlived it would keep
    sending to someone who may no longer read them. The client reconnects with a fresh token
    and `Last-Event-ID`, and misses nothing.
    """
    yield "retry: 1000\n\n"
    quiet_since = time.monotonic()
    failures = 0
    while not await request.is_disconnected():
        if expires_at is not None and time.time() >= expires_at:
            yield 'event: token-expired\ndata: {"reason": "the bearer token expired"}\n\n'
            return
        wake = _signal(request).current()
        try:
            entries = await _page(_engine(request), after, types, 100)
        except Exception as error:
            fault = database_fault(error)
            if fault is None:
                raise
            # The stream stays open through a database outage and resumes where it was.
            outage_log(request).failed(fault)
            failures += 1
            await asyncio.sleep(backoff_ceiling_s(failures, initial_s=0.5, max_s=_OUTAGE_WAIT_S))
            continue
        if failures:
            outage_log(request).recovered()
            failures = 0
        for entry in entries:
            yield _sse_message(entry)
            after = entry.position
        if entries:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= _KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        # Wake at the next publication, or in time for the keep-alive, the disconnect check and
        # the token's expiry.
        wait = (
            _KEEPALIVE_S
            if expires_at is None
            else min(_KEEPALIVE_S, max(expires_at - time.time(), 0))
        )
        await _signal(request).wait(wake, wait)


def _sse_message(entry: FeedEntry) -> str:
    data = orjson.dumps(entry.envelope).decode()
    return f"id: {entry.position}\nevent: {entry.envelope['type']}\ndata: {data}\n\n"


async def _page(
    engine: AsyncEngine, after: int, types: Sequence[str], limit: int
) -> list[FeedEntry]:
    # A short connection per look: a waiting reader holds no connection or transaction.
    async with engine.connect() as conn:
        return await read_feed(conn, after=after, types=types, limit=limit)


def _signal(request: Request) -> FeedSignal:
    signal: FeedSignal = request.app.state.feed_signal
    return signal


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.database.engine
    return engine


def _split(types: str | None) -> list[str]:
    return [name.strip() for name in (types or "").split(",") if name.strip()]


def _authorize(principal: Principal) -> None:
    # Events carry course statuses and resource ids: readers need CarePlan search access.
    authorize(principal, "CarePlan", "search", names=["events"])
    if principal.compartment is not None:
        # The feed is every patient's: it cannot be cut to one compartment.
        raise NotAuthorized("The event feed is not available with patient/ scopes")
