"""A route class whose JSON bodies go through the shared strict parser (`json_input`).

FastAPI parses a pydantic-model body with `json.loads`, which keeps the last of duplicate keys
and lets control characters through; routes of this class parse it with `parse_json` first,
so the IPT domain API refuses what the FHIR API refuses, with the same OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ipt_api.json_input import parse_json

__all__ = ["StrictJsonRoute"]

_UNPARSED = object()


class StrictJsonRoute(APIRoute):
    """An APIRoute that parses its JSON body strictly before FastAPI validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: parse the body first, so errors are ours (400)."""
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            strict_request = _StrictJsonRequest(request.scope, request.receive)
            if takes_body and _is_json(strict_request):
                await strict_request.json()  # raises InvalidRequest outside FastAPI's parsing
            return await handler(strict_request)

        return strict


class _StrictJsonRequest(Request):
    _strict_json: Any = _UNPARSED

    async def json(self) -> Any:
        if self._strict_json is _UNPARSED:
            body = await self.body()
            depth: int = self.app.state.settings.max_json_depth
            self._strict_json = parse_json(body, max_depth=depth) if body.strip() else None
        return self._strict_json


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
