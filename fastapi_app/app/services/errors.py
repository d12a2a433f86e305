"""Why an ingest is refused, in the service's own terms; `api/errors.py` maps them to HTTP.

Each exception carries the sentence and the details the client is told (`detail` items have
`loc`, `msg` and `type`) and, when a retry can succeed later, after how many seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

ErrorDict = dict[str, Any]


class IngestError(Exception):
    """A request the service refuses; the message names the problem."""

    def __init__(
        self, message: str, *, detail: Sequence[ErrorDict] = (), retry_after_s: int | None = None
    ) -> None:
        """Build; `retry_after_s` is set when the same request may succeed later."""
        super().__init__(message)
        self.message = message
        self.detail = list(detail)
        self.retry_after_s = retry_after_s


class InvalidJson(IngestError):
    """The body is not JSON of the expected shape (a JSON batch must be an array)."""


class RecordRejected(IngestError):
    """The records break their contract (or a repeated key), or the batch holds none."""


class TooLarge(IngestError):
    """Too many records in a batch, or one record too large."""


class KeyConflict(IngestError):
    """The `Idempotency-Key` belongs to a different request, or its receipts were pruned."""


class KeyInProgress(KeyConflict):
    """The request holding the `Idempotency-Key` is still running."""


class SinkUnavailable(IngestError):
    """The sink or the store failed or timed out."""


class Overloaded(SinkUnavailable):
    """Too many records in flight, or the sink's queue is full."""


def validation_details(exc: ValidationError, *, prefix: Sequence[str | int]) -> list[ErrorDict]:
    """pydantic's errors as `ErrorDetail` dicts, `loc` prefixed (e.g. `["body", 3]`).

    The input values are left out: they can be large or sensitive.
    """
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validation_message(details: Sequence[ErrorDict], *, title: str, skip: int = 1) -> str:
    """`"2 validation errors for <title>: timestamp: ...; amount: ..."`.

    Args:
        details: The errors.
        title: What was validated (the contract's name).
        skip: Leading `loc` items that are not field names (`body`, a batch index).
    """
    count = len(details)
    parts = []
    for item in details:
        field = ".".join(str(p) for p in item["loc"][skip:]) or "body"
        parts.append(f"{field}: {item['msg']}")
    plural = "" if count == 1 else "s"
    return f"{count} validation error{plural} for {title}: " + "; ".join(parts)
