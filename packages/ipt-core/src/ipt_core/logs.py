"""The one logging setup of every process: JSON lines on stderr, and no patient data in them.

It runs however a process starts (`ipt run`, `ipt serve`, `uvicorn ipt_api.app:create_app
--factory`, `ipt-worker`) and is idempotent, so calling it again changes nothing. It:

- logs JSON lines with the trace and span ids of the current span;
- turns uvicorn's access log off: request lines carry URLs, and URLs carry patient
  identifiers (`identifier=urn:mrn|…`, `name=…`) — even when uvicorn was told otherwise;
- routes uvicorn's own loggers through the same JSON handler;
- renders exceptions as their type and stack frames only: exception messages can quote
  request data (a value that failed a constraint, a URL), so they are never written;
- keeps `httpx` at WARNING (it logs every request's full URL at INFO).

README.md, "Security", says what may appear in logs.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Final

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

__all__ = ["SafeJsonFormatter", "setup_logging"]

_MARK: Final = "_ipt_json_handler"
_QUIET: Final = ("httpx", "httpcore")  # log full URLs at INFO/DEBUG
_UVICORN: Final = ("uvicorn", "uvicorn.error")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def setup_logging(level: str = "INFO") -> None:
    """Log JSON lines to stderr without URLs, access lines or exception messages (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(handler, _MARK, False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(_TraceIds())
        setattr(handler, _MARK, True)
        # Plain handlers someone installed earlier would print the same records unscrubbed.
        root.handlers[:] = [h for h in root.handlers if not _is_plain_stream(h)] + [handler]
        root.setLevel(level)
    _silence_access_log()
    for name in _UVICORN:
        logger = logging.getLogger(name)
        logger.handlers[:] = []  # uvicorn's dictConfig gave it a plain-text handler
        logger.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def _silence_access_log() -> None:
    # uvicorn decides per connection with `hasHandlers()` whether to write access lines:
    # no handler and no propagation means none, whatever `--access-log` said.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True


def _is_plain_stream(handler: logging.Handler) -> bool:
    # Exactly StreamHandler (stderr/stdout), not pytest's capture handlers or file handlers.
    return type(handler) is logging.StreamHandler


class SafeJsonFormatter(JsonFormatter):
    """JSON lines whose exceptions show type and frames, never the message."""

    def formatException(self, ei: ExcInfo | tuple[None, None, None]) -> str:
        """The exception's type and stack, without its (possibly patient-bearing) message."""
        kind, _, tb = ei
        if kind is None:
            return ""
        return f"{kind.__module__}.{kind.__qualname__}\n" + "".join(traceback.format_tb(tb))

    def formatStack(self, stack_info: str) -> str:
        """Stacks (`stack_info=True`) hold code lines only; kept as they are."""
        return stack_info


class _TraceIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return True
