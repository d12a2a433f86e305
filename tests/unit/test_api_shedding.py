"""Overload: past INGESTOR_MAX_CONCURRENCY requests in flight, a fast 503 with Retry-After."""

from __future__ import annotations

import asyncio
import random

import httpx

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.core.store import Candidate, Placement
from fastapi_app.app.main import create_app

TX = "/ingest-financial-transaction/"


class _HeldPublisher(MemoryPublisher):
    """Holds every publish until released, so requests stay in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish(
        self, records: list[Candidate], *, key_id: str, traceparent: str
    ) -> list[Placement]:
        await self.release.wait()
        return await super().publish(records, key_id=key_id, traceparent=traceparent)


def test_requests_past_the_concurrency_bound_get_503_at_once_and_served_ones_succeed() -> None:
    store, publisher = MemoryStore(), _HeldPublisher()
    settings = IngestorSettings(_env_file=None, max_concurrency=3, retry_after_s=2)
    app = create_app(settings, store=store, publisher=publisher)
    key = store.add_api_key()
    rng = random.Random(3)

    async def run() -> tuple[list[httpx.Response], list[httpx.Response], httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://t", headers={"X-API-Key": key}
            ) as client,
        ):
            held = [
                asyncio.create_task(client.post(TX, json=samples.transaction(rng)))
                for _ in range(3)
            ]
            await asyncio.sleep(0.2)  # the three are now waiting on the held sink
            shed = [await client.post(TX, json=samples.transaction(rng)) for _ in range(5)]
            health = await client.get("/health")
            publisher.release.set()
            return [await t for t in held], shed, health

    served, shed, health = asyncio.run(run())
    assert [r.status_code for r in served] == [200, 200, 200]
    assert [r.status_code for r in shed] == [503] * 5
    assert shed[0].headers["retry-after"] == "2"
    assert "at capacity" in shed[0].json()["message"]
    assert health.status_code == 200  # probes are never shed
    assert len(publisher.messages) == 3
