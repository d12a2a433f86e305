"""The `Publisher` protocol: makes reserved records durable in the track's sink."""

from __future__ import annotations

from typing import Protocol

from fastapi_app.app.core.store import Candidate, Receipt, SinkName


class SinkUnavailable(Exception):
    """The sink did not acknowledge in time or refused: answer 503 and let the client retry."""


class SinkOverloaded(SinkUnavailable):
    """The bounded queue in front of the sink is full: shed load with 503."""


class Publisher(Protocol):
    """Writes records to the sink and reports where each landed."""

    sink: SinkName

    async def start(self) -> None:
        """Connect."""

    async def close(self) -> None:
        """Deliver what is queued, then disconnect."""

    async def ping(self) -> None:
        """Raise unless the sink can take records now."""

    async def publish(self, records: list[tuple[Candidate, Receipt]], *, traceparent: str) -> None:
        """Write every record durably; on success each receipt is `durable` with its location.

        Raises:
            SinkUnavailable: Not every record was acknowledged. Some may have been: a retry
                re-publishes the rest under the same ingest ids.
        """
