"""JSON log lines for every process of the platform (ingestor, lake exporter, CLI).

Each line carries the current OpenTelemetry span's trace and span ids when there is one (the
ingestor's request spans), so logs and traces join on the trace id.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id

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
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format_trace_id(context.trace_id)
            entry["span_id"] = format_span_id(context.span_id)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """Every logger (ours, uvicorn's, librdkafka's) as JSON lines to stderr, as a
    `logging.config.dictConfig` dict: uvicorn applies it again in each worker process it starts.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str) -> None:
    """Send every logger (ours, uvicorn's, librdkafka's) as JSON lines to stderr."""
    logging.config.dictConfig(logging_config(level))
