"""The `Publisher` protocol: makes records durable in the track's sink."""

from __future__ import annotations

from typing import Protocol

from fastapi_app.app.core.store import Candidate, Placement, SinkName


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

    def entity_of(self, topic_id: str) -> str | None:
        """`<domain>.<entity>` of the records in the topic with this id, if it is known."""

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        """Write every record durably, sent by API key `key_id`; where each one is, in order.

        Raises:
            SinkUnavailable: Not every record was acknowledged. Some may have been: a retry
                publishes them again (further versions of their keys downstream).
        """
