"""`Idempotency-Key` for the domain API's writes: a retry gets the first answer, not a copy.

The key's row is written in the transaction of the write it answers, so a key is stored
exactly when its write committed. Requests with the same key queue on an advisory lock: a
retry sent while the first attempt is still running waits for it, then replays its answer.
A key reused for a different request (method, path or body) is refused with a 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_api.courses import repository
from ipt_api.courses.errors import IdempotencyKeyReused
from ipt_core.fhir.errors import InvalidRequest

__all__ = ["REPLAYED_HEADER", "idempotent", "request_fingerprint"]

REPLAYED_HEADER = "Idempotent-Replayed"
_MAX_KEY_LENGTH = 255


def request_fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """A digest of what a request asks for: method, path and its parsed body."""
    parsed = body.model_dump(mode="json") if body is not None else None
    canonical = orjson.dumps([method, path, parsed], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def idempotent(
    conn: AsyncConnection,
    *,
    scope: str,
    key: str | None,
    fingerprint: str,
    status_code: int,
    now: datetime,
    action: Callable[[], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run `action` once per key: answer a repeat with the stored response.

    Args:
        conn: the request's transaction.
        scope: whose key it is (the caller), so two clients' keys never collide.
        key: the `Idempotency-Key` header; None runs `action` unguarded.
        fingerprint: `request_fingerprint` of the request.
        status_code: the status of a successful answer.
        now: when the key is stored.
        action: the write; its result becomes the response body.

    Raises:
        IdempotencyKeyReused: when the key answered a different request.
        InvalidRequest: when the key is blank or too long.
    """
    if key is None:
        return JSONResponse((await action()).model_dump(mode="json"), status_code)
    _check_key(key)
    await repository.lock_idempotency_key(conn, scope, key)
    stored = await repository.stored_answer(conn, scope, key)
    if stored is not None:
        if stored.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; use a new key",
                expression=("Idempotency-Key",),
            )
        headers = {REPLAYED_HEADER: "true"}
        return JSONResponse(stored.response, stored.status_code, headers=headers)
    body = (await action()).model_dump(mode="json")
    answer = repository.StoredAnswer(fingerprint, status_code, body)
    await repository.remember_answer(conn, scope, key, answer, now)
    return JSONResponse(body, status_code)


def _check_key(key: str) -> None:
    if not key.strip() or len(key) > _MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            f"An Idempotency-Key is 1-{_MAX_KEY_LENGTH} printable characters",
            expression=("Idempotency-Key",),
        )
