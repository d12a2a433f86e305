"""Structured logs and W3C trace context shared by every process of the platform.

JSON log lines (one object per line, carrying the current trace id) for the ingestor, the lake
exporter and the CLI; the trace context is continued from a client's `traceparent` or started.
"""

from __future__ import annotations

import contextvars
import logging
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# --------------------------------------------------------------------------- trace context


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The W3C trace context of one request: the client's trace, our span."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value naming our span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


_TRACE: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("trace", default=None)
_HEX = frozenset("0123456789abcdef")
# Ids only need to be unique, not unpredictable; `random` is ~10x cheaper than `secrets`.
_rng = random.Random()  # noqa: S311


def _hex_id(bits: int) -> str:
    return f"{_rng.getrandbits(bits):0{bits // 4}x}"


def parse_traceparent(value: str | None) -> TraceContext:
    """Continue the client's trace from a valid `traceparent`, else start a new one."""
    span_id = _hex_id(64)
    if value:
        parts = value.strip().split("-")
        if (
            len(parts) >= 4
            and len(parts[0]) == 2
            and parts[0] != "ff"
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and len(parts[3]) == 2
            and set(parts[1]) <= _HEX
            and set(parts[2]) <= _HEX
            and set(parts[3]) <= _HEX
            and parts[1] != "0" * 32
            and parts[2] != "0" * 16
        ):
            return TraceContext(parts[1], span_id, bool(int(parts[3], 16) & 1))
    return TraceContext(_hex_id(128), span_id, True)


def bind_trace(trace: TraceContext) -> contextvars.Token[TraceContext | None]:
    """Make `trace` the current trace context; pass the token to `reset_trace` when done."""
    return _TRACE.set(trace)


def reset_trace(token: contextvars.Token[TraceContext | None]) -> None:
    """Restore the trace context that was current before `bind_trace`."""
    _TRACE.reset(token)


def current_trace() -> TraceContext:
    """The trace context of the request being served (a fresh one outside a request)."""
    trace = _TRACE.get()
    if trace is None:
        trace = parse_traceparent(None)
        _TRACE.set(trace)
    return trace


# --------------------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace id and extra fields.

    Extra fields are passed as `log.info("...", extra={"fields": {...}})`.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a JSON line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace = _TRACE.get()
        if trace is not None:
            entry["trace_id"] = trace.trace_id
            entry["span_id"] = trace.span_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every logger (ours, uvicorn's, librdkafka's) as JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
