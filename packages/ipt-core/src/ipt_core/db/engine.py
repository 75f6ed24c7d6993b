"""The async SQLAlchemy engine, and the database URL when none is configured."""

from __future__ import annotations

from typing import Any, Final

import orjson
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["asyncpg_url", "create_engine", "on_database"]

# A connection attempt gives up after this: an unreachable server answers 503, not a hang.
_CONNECT_TIMEOUT_S: Final = 5.0
# Each connection prepares a statement once and keeps it (SQLAlchemy's asyncpg cache; its
# default is 100). The store's writes and primary-key reads are a few fixed statements, but
# each shape of search is one more, so keep more of them rather than prepare them again.
# `statement_timeout` is a session setting: it bounds prepared statements as well.
_PREPARED_STATEMENTS: Final = 500
# A request that finds every connection busy waits this long for one, then answers 503
# (overloaded, with Retry-After): well past any wait of a busy but healthy pool, and well
# before a client's or proxy's own timeout would turn it into an unexplained failure.
_POOL_TIMEOUT_S: Final = 10.0


def asyncpg_url(url: str) -> str:
    """Return `url` with the asyncpg driver, whatever PostgreSQL scheme it was given in.

    Raises ValueError, never echoing `url` (it may hold a password), for anything else.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ValueError("DATABASE_URL is not a URL") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise ValueError("DATABASE_URL must be a PostgreSQL URL")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def on_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name` (a socket URL ends in a query: not a split)."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    statement_timeout_ms: int | None = None,
    pool_timeout_s: float = _POOL_TIMEOUT_S,
) -> AsyncEngine:
    """Create the engine every process shares; broken pooled connections are never handed out.

    The pool opens up to `pool_size` connections as they are needed and keeps every one:
    no overflow. An overflow connection is closed as soon as it is returned to a full pool,
    so a load of more concurrent requests than `pool_size` opened and closed a connection
    (a new server process, its prepared statements and type introspection again) every few
    requests: reads at 32 connections cost 2.3 ms of API and 0.7 ms of PostgreSQL CPU each
    instead of 1.5 and 0.2 (docs/architecture.md#read-path). A request that finds every
    connection busy queues for one instead, for at most `pool_timeout_s`.

    With `statement_timeout_ms`, PostgreSQL cancels any statement of these connections that
    runs longer (the API bounds the cost of one request; README, "Input limits").

    Not `pool_pre_ping`: a ping is one more round trip on every checkout (measured +0.55 ms
    on a local server, +70 % on a primary-key read). asyncpg reads its socket all the time, so
    a connection the server closed (restart, failover, `pg_terminate_backend`) is already
    known to be closed when it is checked out; `_discard_closed` swaps it for a fresh one at
    no cost. A connection that dies silently (a network partition) fails its next statement,
    which answers 503 and makes SQLAlchemy replace the whole pool.
    """
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout_s,
        # jsonb values (course timing, outbox envelopes, audit content…) through orjson, not
        # the standard library's json: the status engine's facts loader decodes thousands of
        # them per batch.
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        connect_args={
            "timeout": _CONNECT_TIMEOUT_S,
            "prepared_statement_cache_size": _PREPARED_STATEMENTS,
            **_server_settings(statement_timeout_ms),
        },
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def _json_text(value: Any) -> str:
    # Non-string keys become strings, as json.dumps makes them.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _server_settings(statement_timeout_ms: int | None) -> dict[str, Any]:
    if not statement_timeout_ms:
        return {}
    return {"server_settings": {"statement_timeout": str(statement_timeout_ms)}}


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # DisconnectionError makes the pool drop this connection and check out another one.
    if proxy.driver_connection.is_closed():
        raise sqlalchemy.exc.DisconnectionError("pooled connection was closed by the server")
