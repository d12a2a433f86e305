"""Compare Python Kafka producers on the same broker: confluent-kafka, kafka-python, aiokafka.

Each client produces N messages of `--size` bytes with `acks=all` (and idempotence where the
client supports it) as fast as it can, waits for every acknowledgement, and reports records/s
and the per-message delivery latency (produce call -> acknowledgement seen by the client;
p50/p99). Clients run one after another, `--rounds` times interleaved, on a private throwaway
broker by default (`private_kafka.py`), so no shared topic receives the load; the client
process is pinned with `--cpu` like the ingestor would be.

The clients are benchmark-only dependencies, not the project's:

    .venv/bin/pip install kafka-python aiokafka      # confluent-kafka is already installed
    .venv/bin/python benchmarks/kafka_clients.py --messages 200000 --rounds 3
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPIC = "finance.transactions.v1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def bench_confluent(bootstrap: str, n: int, payload: bytes) -> tuple[float, list[float]]:
    """confluent-kafka (librdkafka): idempotent, acks=all, linger 5 ms."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    sent = [0.0] * n
    latency: list[float] = []
    errors = []

    def report(i: int) -> Callable[[object, object], None]:
        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(err)
            latency.append(time.perf_counter() - sent[i])

        return on_delivery

    started = time.perf_counter()
    for i in range(n):
        sent[i] = time.perf_counter()
        while True:
            try:
                producer.produce(TOPIC, payload, key=str(i).encode(), on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"confluent-kafka: {len(errors)} errors, first {errors[0]}")
    return elapsed, latency


def bench_kafka_python(bootstrap: str, n: int, payload: bytes) -> tuple[float, list[float]]:
    """kafka-python (pure Python): acks=all, idempotence on (3.x supports it), linger 5 ms."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_in_flight_requests_per_connection=5,
    )
    latency: list[float] = []
    futures = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        future = producer.send(TOPIC, payload, key=str(i).encode())
        future.add_callback(lambda _md, t0=t0: latency.append(time.perf_counter() - t0))
        futures.append(future)
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    failed = [f for f in futures if f.failed()]
    producer.close()
    if failed:
        raise RuntimeError(f"kafka-python: {len(failed)} failed, first {failed[0].exception}")
    return elapsed, latency


def bench_aiokafka(bootstrap: str, n: int, payload: bytes) -> tuple[float, list[float]]:
    """aiokafka (asyncio, pure Python): acks=all, idempotence on, linger 5 ms."""
    from aiokafka import AIOKafkaProducer

    async def run() -> tuple[float, list[float]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        latency: list[float] = []
        try:
            pending = []
            started = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                # send() waits only when its buffer is full; it returns the delivery future.
                future = await producer.send(TOPIC, payload, key=str(i).encode())
                future.add_done_callback(lambda _f, t0=t0: latency.append(time.perf_counter() - t0))
                pending.append(future)
            await asyncio.gather(*pending)
            elapsed = time.perf_counter() - started
        finally:
            await producer.stop()
        return elapsed, latency

    return asyncio.run(run())


CLIENTS: dict[str, Callable[[str, int, bytes], tuple[float, list[float]]]] = {
    "confluent-kafka": bench_confluent,
    "kafka-python": bench_kafka_python,
    "aiokafka": bench_aiokafka,
}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print medians."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000, help="per client run (200000)")
    parser.add_argument("--size", type=int, default=250, help="message bytes (250)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--warmup-messages", type=int, default=5000, help="unrecorded run per client first (5000)"
    )
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help=f"subset of {','.join(CLIENTS)}"
    )
    parser.add_argument(
        "--bootstrap",
        default="private",
        help="'private' (default): a throwaway broker; or HOST:PORT (its topic "
        f"{TOPIC} then receives the messages)",
    )
    parser.add_argument("--kafka-port", type=int, default=19092, help="private broker port")
    parser.add_argument("--cpu", type=int, default=0, help="pin this process to a core (0)")
    args = parser.parse_args(argv)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    missing = []
    for client, module in (("kafka-python", "kafka"), ("aiokafka", "aiokafka")):
        if client in clients:
            try:
                __import__(module)
            except ImportError:
                missing.append(client)
    if missing:
        sys.exit(
            f"not installed: {', '.join(missing)}; `.venv/bin/pip install {' '.join(missing)}`"
        )
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    payload = b"x" * args.size
    sys.path.insert(0, str(HERE))
    from private_kafka import private_broker

    results: dict[str, list[tuple[float, float, float]]] = {c: [] for c in clients}
    cpu_used: dict[str, list[float]] = {c: [] for c in clients}

    def run_all(bootstrap: str) -> None:
        # Unrecorded warm-up: a fresh broker first answers idempotent producers with
        # "coordinator load in progress", which would land in the first client's numbers.
        for client in clients:
            CLIENTS[client](bootstrap, args.warmup_messages, payload)
        for rnd in range(1, args.rounds + 1):
            for client in clients:
                cpu0 = time.process_time()
                elapsed, latency = CLIENTS[client](bootstrap, args.messages, payload)
                cpu = time.process_time() - cpu0
                rate = args.messages / elapsed
                p50 = _percentile(latency, 50) * 1000
                p99 = _percentile(latency, 99) * 1000
                results[client].append((rate, p50, p99))
                cpu_used[client].append(cpu * 1e6 / args.messages)
                print(
                    f"round {rnd} {client:<16} {rate:>10,.0f} msg/s  delivery p50 {p50:8.1f} ms"
                    f"  p99 {p99:8.1f} ms  {cpu * 1e6 / args.messages:6.1f} CPU us/msg",
                    flush=True,
                )

    if args.bootstrap == "private":
        print(f"starting a private Kafka broker on 127.0.0.1:{args.kafka_port} ...", flush=True)
        with private_broker(port=args.kafka_port) as bootstrap:
            run_all(bootstrap)
    else:
        run_all(args.bootstrap)

    print(
        f"\nmedians of {args.rounds} rounds, {args.messages:,} x {args.size} B, acks=all, "
        "idempotent, linger 5 ms"
    )
    print("client            msg/s   x confluent  delivery p50 ms  p99 ms  CPU us/msg")
    base = statistics.median(r[0] for r in results[clients[0]])
    for client in clients:
        rate = statistics.median(r[0] for r in results[client])
        p50 = statistics.median(r[1] for r in results[client])
        p99 = statistics.median(r[2] for r in results[client])
        cpu = statistics.median(cpu_used[client])
        print(
            f"{client:<16} {rate:>8,.0f}   {rate / base:>8.2f}x   {p50:>12.1f} {p99:>9.1f}"
            f" {cpu:>10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
