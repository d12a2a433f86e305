"""CPU per request of the ingestor app alone: the ingest fast path against FastAPI's routing.

No server, no network, no broker: the app (`create_app`, in-memory store and sink, API-key auth
on, the SDK tracer provider making a span per request) is called as an ASGI callable, so the
figure is what the app's own Python costs per request. Rounds interleave the two variants
(fast path on, off) and the medians are printed with their ratio:

    .venv/bin/python benchmarks/asgi_inprocess.py --rounds 5 --requests 4000
    .venv/bin/python benchmarks/asgi_inprocess.py --batch 500 --requests 200

Reads `.env` for `RECEIPT_SECRET` (run from the repository, or set DATAPLATFORM_HOME).
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider

from dataplatform import samples
from dataplatform.settings import IngestorSettings
from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore
from fastapi_app.app.main import create_app

Message = dict[str, Any]


async def _started(app: Any) -> asyncio.Task[None]:
    """Run the app's lifespan startup (its service is built there); keep the task referenced
    while the app is used, or it is collected and the lifespan ends."""
    started = asyncio.Event()
    events = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        if events:
            return events.pop()
        await asyncio.Event().wait()  # the lifespan waits for shutdown until the loop ends
        return {}

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "state": {}}, receive, send)
    )
    await started.wait()
    return task


async def _variant(
    *, fast_path: bool, batch: int, lifespans: list[asyncio.Task[None]]
) -> Callable[[], Awaitable[None]]:
    """One app (its lifespan task appended to `lifespans`) and a callable sending it a request."""
    store, rng = MemoryStore(), random.Random(1)  # noqa: S311 (sample data)
    key = store.add_api_key()
    app = create_app(
        IngestorSettings(_env_file=None, rate_limit_per_s=0, log_requests=False),
        store=store,
        publisher=MemoryPublisher(),
        tracer_provider=TracerProvider(),
        fast_path=fast_path,
    )
    lifespans.append(await _started(app))
    if batch:
        path = "/v1/transactions/batch"
        body = b"\n".join(orjson.dumps(samples.transaction(rng)) for _ in range(batch))
        kind = b"application/x-ndjson"
    else:
        path, body = "/ingest-financial-transaction/", orjson.dumps(samples.transaction(rng))
        kind = b"application/json"
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"x-api-key", key.encode()),
    ]

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "state": {},
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> Message:
            return pending.pop() if pending else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif statuses != [200]:
                raise RuntimeError(f"answered {statuses}: {message.get('body', b'')!r}")

        await app(scope, receive, send)
        if statuses != [200]:
            raise RuntimeError(f"answered {statuses}")

    return one


async def _measure(one: Callable[[], Awaitable[None]], requests: int) -> float:
    """CPU µs per request (this process's user + system time)."""
    started = time.process_time()
    for _ in range(requests):
        await one()
    return (time.process_time() - started) / requests * 1e6


async def _main(args: argparse.Namespace) -> None:
    lifespans: list[asyncio.Task[None]] = []
    variants = {
        "fast path": await _variant(fast_path=True, batch=args.batch, lifespans=lifespans),
        "FastAPI routing": await _variant(fast_path=False, batch=args.batch, lifespans=lifespans),
    }
    for one in variants.values():  # warm-up: imports, caches, first spans
        await _measure(one, max(1, args.requests // 10))
    samples_us: dict[str, list[float]] = {name: [] for name in variants}
    for round_no in range(1, args.rounds + 1):
        for name, one in variants.items():
            cost = await _measure(one, args.requests)
            samples_us[name].append(cost)
            print(f"round {round_no}  {name:16} {cost:9.1f} CPU µs/request")
    medians = {name: statistics.median(values) for name, values in samples_us.items()}
    what = f"batch of {args.batch}" if args.batch else "single record"
    print(f"\nmedians of {args.rounds} rounds, {what}:")
    for name, value in medians.items():
        print(f"  {name:16} {value:9.1f} CPU µs/request")
    print(f"  fast/routed      {medians['fast path'] / medians['FastAPI routing']:.2f}x")


def main() -> None:
    """Parse the arguments and run the interleaved rounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per run (4000)")
    parser.add_argument("--batch", type=int, default=0, help="NDJSON batch size (0: single)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
