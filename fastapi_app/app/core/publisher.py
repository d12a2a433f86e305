"""The `Publisher` protocol: makes records durable in the track's sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from fastapi_app.app.core.store import Candidate, KeyBinding, Placement, Receipt, SinkName


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

    async def current_topic_id(self, topic: str) -> str | None:
        """The id (URL-safe, as ingest ids name it) the topic has now; None when unknown or
        the sink has no topics."""

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        """Write every record durably, sent by API key `key_id`; where each one is, in order.

        Raises:
            SinkUnavailable: Not every record was acknowledged. Some may have been: a retry
                publishes them again (further versions of their keys downstream).
        """


@runtime_checkable
class BindingPublisher(Publisher, Protocol):
    """A sink in the same database as the `Idempotency-Key` bindings (the starter's outbox):
    it completes a request's binding in the transaction that makes its records durable, so a
    keyed request has no at-least-once window."""

    async def publish_bound(
        self,
        records: list[Candidate],
        *,
        key_id: str,
        binding: KeyBinding,
        receipts_of: Callable[[list[Placement]], list[Receipt]],
    ) -> list[Receipt]:
        """Write every record and complete `binding` with `receipts_of(placements)`, in one
        transaction; the receipts, in order.

        Raises:
            SinkUnavailable: Nothing was written (the transaction rolled back).
        """
