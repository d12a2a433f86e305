"""Benchmark the ingestor against a bare ASGI control, interleaved, as `BENCHMARKING.md` says.

Starts its own servers (never touches the managed ingestor on :8000) pinned to one core, drives
them with `wrk` pinned to the other, and prints medians of repeated rounds with ratios to the
control run of the same round:

* a  single-record ingest acknowledged by Kafka (acks=all), saturated, vs bare ASGI
* b  single-record ingest paced at --paced-rate (default 1,000 req/s): p50/p99
* c  NDJSON batches of 500 records acknowledged by Kafka, saturated: records/s; and paced at
     --batch-paced-rate (default 100 req/s = 50,000 records/s): p99 per request
* d  starter sink (Postgres outbox) single-record, saturated
* e  overload: rising connection counts, status codes per step (after the rounds)

Isolation: Kafka load goes to a private throwaway broker (`private_kafka.py`) unless `--kafka`
names one, and receipts/outbox rows go to their own Postgres schema (`--schema`, dropped at the
end when this script created it), so the platform's topics, bronze tables and lake exporter
never see benchmark data. Every process started here is stopped by its PID on exit.

Needs `wrk` (`apt-get update && apt-get install -y wrk`) and `taskset` (util-linux).

    .venv/bin/python benchmarks/run_ingest_bench.py --rounds 5
    .venv/bin/python benchmarks/run_ingest_bench.py --scenarios a,c --rounds 3 \\
        --variant before:PYTHONPATH=/tmp/before   # A/B a copy of the old code, interleaved
"""

# ruff: noqa: T201  (a command-line tool: its output is the report)

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
WRK_DIR = HERE / "wrk"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("a", "b", "c", "d", "e")


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server under test: how to start it, and the process once started."""

    name: str
    port: int
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_server(server: Server, *, cpu: int, log_dir: Path, timeout_s: float = 90) -> None:
    """Start `server` pinned to `cpu` and wait until its health path answers."""
    if not _port_free(server.port):
        raise RuntimeError(f"port {server.port} is in use: choose another --port")
    server.log_path = log_dir / f"{server.name}.log"
    with server.log_path.open("wb") as log:
        server.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), *server.cmd],
            env={**os.environ, **server.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{server.port}{server.health_path}"
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; log:\n{server.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer {url} within {timeout_s:.0f}s")
        time.sleep(0.3)


def stop_server(server: Server) -> None:
    """SIGTERM by PID, then SIGKILL if it has not gone after 20 s."""
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------- wrk


@dataclass
class Load:
    """One wrk invocation: a script from benchmarks/wrk/ and its environment."""

    script: str
    connections: int
    records_per_request: int = 1
    env: dict[str, str] = field(default_factory=dict)


def run_wrk(
    load: Load, port: int, *, duration_s: float, cpu: int, base_env: dict[str, str]
) -> dict[str, Any]:
    """Run wrk once; return the `BENCH_RESULT` its script prints."""
    cmd = [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        "-t1",
        f"-c{load.connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / load.script),
        f"http://127.0.0.1:{port}/",
    ]
    env = {
        **os.environ,
        **base_env,
        "BENCH_RUN": uuid.uuid4().hex[:10],
        "BENCH_CONNECTIONS": str(load.connections),
        **load.env,
    }
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    match = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def wait_drained(server: Server, *, timeout_s: float = 30) -> None:
    """Wait until the ingestor has no records in flight.

    wrk abandons its outstanding requests when a run ends; with slow (batch) requests the
    server is still working on them when the next run starts, which would count against
    that run (and trip the in-flight bound).
    """
    url = f"http://127.0.0.1:{server.port}/metrics"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return
        match = re.search(r"^ingestor_inflight_records (\S+)$", text, re.MULTILINE)
        if match is None or float(match.group(1)) == 0:
            return
        time.sleep(0.2)


def start_profiler(
    server: Server, scenario: str, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """`py-spy record` of the server for the measured run (it slows the server a little)."""
    if shutil.which("py-spy") is None and not (VENV_BIN / "py-spy").exists():
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    fmt = args.profile_format
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[fmt]
    out = args.profile / f"{scenario}-{server.name}.{suffix}"
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.pid),
            "--format",
            fmt,
            "--output",
            str(out),
            "--duration",
            str(round(args.duration) + 5),
            "--rate",
            "200",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    """Stop py-spy with SIGINT (it then writes its output) and wait for it."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Sample:
    """One measured run."""

    scenario: str
    server: str
    round: int
    rps: float
    records_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]
    connections: int


def measure(
    scenario: str,
    server: Server,
    load: Load,
    *,
    rnd: int,
    args: argparse.Namespace,
    base_env: dict[str, str],
) -> Sample:
    """Warm up, then one measured wrk run with the server's CPU time around it."""
    if args.warmup > 0:
        run_wrk(load, server.port, duration_s=args.warmup, cpu=args.load_cpu, base_env=base_env)
    if server.name != "control":
        wait_drained(server)
    profiler = None
    if args.profile and rnd == 1 and server.name != "control":
        profiler = start_profiler(server, scenario, args)
    before = cpu_seconds(server.pid)
    try:
        res = run_wrk(
            load, server.port, duration_s=args.duration, cpu=args.load_cpu, base_env=base_env
        )
    finally:
        used = cpu_seconds(server.pid) - before
        if profiler is not None:
            stop_profiler(profiler)
    requests = max(1, res["requests"])
    seconds = res["duration_us"] / 1e6
    errors = res["errors"]
    sample = Sample(
        scenario=scenario,
        server=server.name,
        round=rnd,
        # Throughput counts only 2xx answers: a fast 503 is shed load, not ingest.
        rps=(requests - errors["status"]) / seconds,
        records_per_s=(requests - errors["status"]) * load.records_per_request / seconds,
        p50_ms=res["latency_us"]["p50"] / 1000,
        p99_ms=res["latency_us"]["p99"] / 1000,
        cpu_us_per_req=used * 1e6 / requests,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        statuses=res["statuses"],
        connections=load.connections,
    )
    flag = ""
    if sample.non_2xx or sample.socket_errors:
        flag = f"  non-2xx {sample.non_2xx} socket errors {sample.socket_errors}"
    print(
        f"  [{scenario}] {server.name:<14} c={load.connections:<4} {sample.rps:>9,.0f} req/s"
        f" {sample.records_per_s:>10,.0f} rec/s  p50 {sample.p50_ms:6.2f}  p99 {sample.p99_ms:7.2f}"
        f" ms  {sample.cpu_us_per_req:7.0f} CPU us/req{flag}",
        flush=True,
    )
    return sample


# --------------------------------------------------------------------------- setup


@contextmanager
def bench_schema(schema: str, *, keep: bool) -> Iterator[str]:
    """Migrate `schema`, create an API key in it; drop the schema after if it was new."""
    import psycopg

    from dataplatform.db import apikeys
    from dataplatform.db.migrate import migrate
    from dataplatform.settings import get_postgres_settings

    conninfo = get_postgres_settings().conninfo()
    with psycopg.connect(conninfo) as conn:
        existed = (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is not None
        )
    migrate(conninfo, schema)
    key, _ = apikeys.create(conninfo, schema, name="bench")
    try:
        yield key
    finally:
        if not existed and not keep:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def build_servers(args: argparse.Namespace, bootstrap: str) -> dict[str, Server]:
    """The control, the Kafka-sink ingestor (and variants), the Postgres-sink ingestor."""
    uvicorn_flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    common = {
        "INGEST_DB_SCHEMA": args.schema,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "INGESTOR_LOG_REQUESTS": "false",
        "INGESTOR_RATE_LIMIT_PER_S": "0",
        "INGESTOR_AUTH_ENABLED": "true",
        "INGESTOR_LOG_LEVEL": "WARNING",
    }
    for item in args.set:
        key, _, value = item.partition("=")
        common[key] = value
    ingestor = [str(VENV_BIN / "dataplatform"), "run", "ingestor", "--port"]
    port = args.port
    servers = {
        "control": Server(
            "control",
            port,
            [
                str(VENV_BIN / "uvicorn"),
                "bare_asgi:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *uvicorn_flags,
            ],
            health_path="/",
        ),
    }
    wanted = set(args.scenarios)
    if wanted & {"a", "b", "c", "e"}:
        servers["kafka"] = Server(
            "kafka", port + 1, [*ingestor, str(port + 1)], {**common, "INGESTOR_SINK": "kafka"}
        )
        for i, variant in enumerate(args.variant, start=2):
            name, _, assignments = variant.partition(":")
            env = {**common, "INGESTOR_SINK": "kafka"}
            for item in filter(None, assignments.split(",")):
                key, _, value = item.partition("=")
                env[key] = value
            servers[f"kafka-{name}"] = Server(
                f"kafka-{name}", port + i, [*ingestor, str(port + i)], env
            )
    if "a" in wanted and args.auth_off_variant:
        servers["kafka-noauth"] = Server(
            "kafka-noauth",
            port + 20,
            [*ingestor, str(port + 20)],
            {
                **common,
                "INGESTOR_SINK": "kafka",
                "INGESTOR_AUTH_ENABLED": "false",
                "DATAPLATFORM_ENV": "development",
            },
        )
    if "d" in wanted:
        servers["postgres"] = Server(
            "postgres",
            port + 21,
            [*ingestor, str(port + 21)],
            {**common, "INGESTOR_SINK": "postgres"},
        )
    return servers


# --------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Medians per (scenario, server), with the median of per-round ratios to the control."""
    rows = []
    keys = sorted(
        {(s.scenario, s.server) for s in samples}, key=lambda k: (k[0], k[1] != "control")
    )
    for scenario, server in keys:
        mine = [s for s in samples if s.scenario == scenario and s.server == server]
        control = {s.round: s for s in samples if s.scenario == scenario and s.server == "control"}
        ratios = [s.rps / control[s.round].rps for s in mine if s.round in control]
        cpu_ratios = [
            s.cpu_us_per_req / control[s.round].cpu_us_per_req for s in mine if s.round in control
        ]
        rows.append(
            {
                "scenario": scenario,
                "server": server,
                "rounds": len(mine),
                "rps": _median([s.rps for s in mine]),
                "records_per_s": _median([s.records_per_s for s in mine]),
                "p50_ms": _median([s.p50_ms for s in mine]),
                "p99_ms": _median([s.p99_ms for s in mine]),
                "cpu_us_per_req": _median([s.cpu_us_per_req for s in mine]),
                "ratio_rps": _median(ratios) if server != "control" else 1.0,
                "ratio_cpu": _median(cpu_ratios) if server != "control" else 1.0,
                "ratio_rps_all": [round(r, 3) for r in ratios],
                "non_2xx": sum(s.non_2xx for s in mine),
            }
        )
    return rows


SCENARIO_TITLES = {
    "a": "single record, saturated",
    "b": "single record, paced",
    "c": "batch of 500 (NDJSON), saturated",
    "c-paced": "batch of 500, paced",
    "d": "single record, Postgres outbox sink",
}


def print_table(rows: list[dict[str, Any]]) -> None:
    """The medians table."""
    print(
        "\nscenario  server          n    req/s     records/s  p50 ms  p99 ms  CPU us/req"
        "  x control (req/s, CPU/req)  non-2xx"
    )
    for r in rows:
        print(
            f"{r['scenario']:<9} {r['server']:<14} {r['rounds']:>2} {r['rps']:>9,.0f}"
            f" {r['records_per_s']:>12,.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}"
            f" {r['cpu_us_per_req']:>10.0f}   {r['ratio_rps']:>6.3f}x {r['ratio_cpu']:>6.2f}x"
            f"            {r['non_2xx']}"
        )
    for key, title in SCENARIO_TITLES.items():
        if any(r["scenario"] == key for r in rows):
            print(f"  {key}: {title}")


def print_targets(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Met / missed against the issue's targets."""
    get = {(r["scenario"], r["server"]): r for r in rows}
    checks = []
    if ("a", "kafka") in get:
        ratio = get["a", "kafka"]["ratio_rps"]
        checks.append(
            (
                "a  single/Kafka >= 0.30x bare (stretch 0.35x)",
                f"{ratio:.3f}x",
                ratio >= 0.30,
                ratio >= 0.35,
            )
        )
    if ("b", "kafka") in get:
        r = get["b", "kafka"]
        checks.append(
            (
                f"b  paced {args.paced_rate:,} req/s: p50 <= 2 ms, p99 <= 10 ms",
                f"{r['rps']:,.0f} req/s, {r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms",
                r["p50_ms"] <= 2 and r["p99_ms"] <= 10,
                None,
            )
        )
    if ("c", "kafka") in get:
        rec = get["c", "kafka"]["records_per_s"]
        checks.append(
            (
                "c  batch/Kafka >= 100,000 records/s (stretch 200,000)",
                f"{rec:,.0f}",
                rec >= 100_000,
                rec >= 200_000,
            )
        )
    if ("c-paced", "kafka") in get:
        r = get["c-paced", "kafka"]
        checks.append(
            (
                f"c  batch paced {r['records_per_s']:,.0f} rec/s: p99 <= 25 ms",
                f"{r['p99_ms']:.2f} ms",
                r["p99_ms"] <= 25,
                None,
            )
        )
    if ("d", "postgres") in get:
        rps = get["d", "postgres"]["rps"]
        checks.append(
            ("d  single/Postgres outbox >= 1,500 req/s", f"{rps:,.0f}", rps >= 1500, None)
        )
    print(
        "\ntarget                                                      measured (median)      met"
    )
    for title, measured, met, stretch in checks:
        verdict = "MET" if met else "MISSED"
        if stretch is not None:
            verdict += " (stretch met)" if stretch else " (stretch missed)"
        print(f"{title:<59} {measured:<22} {verdict}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios",
        default="a,b,c,d,e",
        help="comma-separated subset of a,b,c,d,e (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per run (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (64)")
    parser.add_argument("--batch-size", type=int, default=500, help="records per batch (500)")
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=16,
        help="wrk -c of scenario c (16: 64 x 500 records exceeds the default in-flight bound "
        "of 10,000 records, so part of the load would be shed; e shows that)",
    )
    parser.add_argument("--paced-rate", type=int, default=1000, help="scenario b req/s (1000)")
    parser.add_argument(
        "--batch-paced-rate", type=int, default=100, help="scenario c paced batches/s (100)"
    )
    parser.add_argument(
        "--overload-steps",
        default="16,64,256,1024",
        help="scenario e single-record connection counts (16,64,256,1024)",
    )
    parser.add_argument(
        "--overload-batch-steps",
        default="4,16,64",
        help="scenario e batch connection counts (4,16,64)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core of the servers (0)")
    parser.add_argument("--load-cpu", type=int, default=1, help="core of wrk (1)")
    parser.add_argument("--port", type=int, default=18200, help="first server port (18200)")
    parser.add_argument(
        "--kafka",
        default="private",
        help="'private' (default): a throwaway broker; or HOST:PORT of an existing one "
        "(its topics then receive the benchmark's records)",
    )
    parser.add_argument("--kafka-port", type=int, default=19092, help="private broker port")
    parser.add_argument(
        "--schema", default="bench", help="Postgres schema of receipts/outbox (bench)"
    )
    parser.add_argument("--keep-schema", action="store_true", help="do not drop --schema")
    parser.add_argument(
        "--no-auth-variant",
        dest="auth_off_variant",
        action="store_false",
        help="skip the auth-off ingestor in scenario a (it shows the cost of auth)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="env override for every ingestor (e.g. INGESTOR_KAFKA_LINGER_MS=5)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="an extra Kafka-sink ingestor interleaved in a/b/c (A/B of settings or code)",
    )
    parser.add_argument("--json", type=Path, help="also write samples and medians here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record each ingestor's measured run of round 1 into DIR (needs py-spy)",
    )
    parser.add_argument(
        "--profile-format",
        choices=("flamegraph", "raw", "speedscope"),
        default="flamegraph",
        help="py-spy output: flamegraph (svg), raw (collapsed stacks, text), speedscope",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def _require_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: install with "
            "`apt-get update && apt-get install -y wrk util-linux`"
        )


def _raise_on_sigterm() -> None:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on completion (targets are reported, not asserted)."""
    args = parse_args(argv)
    _require_tools()
    _raise_on_sigterm()
    sys.path.insert(0, str(HERE))
    from private_kafka import private_broker

    samples: list[Sample] = []
    overload: list[Sample] = []
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ingest-bench-")))
        if args.kafka == "private" and set(args.scenarios) & {"a", "b", "c", "e"}:
            print(f"starting a private Kafka broker on 127.0.0.1:{args.kafka_port} ...", flush=True)
            bootstrap = stack.enter_context(private_broker(port=args.kafka_port))
        else:
            bootstrap = args.kafka if args.kafka != "private" else "127.0.0.1:9092"
        api_key = stack.enter_context(bench_schema(args.schema, keep=args.keep_schema))
        servers = build_servers(args, bootstrap)
        for server in servers.values():
            stack.callback(stop_server, server)
            start_server(server, cpu=args.server_cpu, log_dir=log_dir)
        print(
            "servers: "
            + ", ".join(f"{s.name} :{s.port} pid {s.pid}" for s in servers.values())
            + f"; server core {args.server_cpu}, wrk core {args.load_cpu}",
            flush=True,
        )
        base_env = {"BENCH_API_KEY": api_key, "BENCH_BATCH": str(args.batch_size)}
        plan = _plan(args, servers)
        for rnd in range(1, args.rounds + 1):
            print(f"round {rnd}/{args.rounds}", flush=True)
            for scenario, names, load in plan:
                for name in names:
                    samples.append(
                        measure(
                            scenario, servers[name], load, rnd=rnd, args=args, base_env=base_env
                        )
                    )
        if "e" in args.scenarios:
            overload = _overload(args, servers["kafka"], base_env)
        rows = summarise(samples)
        print_table(rows)
        if overload:
            _print_overload(overload)
        print_targets(rows, args)
        for server in servers.values():
            stop_server(server)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "args": {k: v for k, v in vars(args).items() if k != "json"},
                        "samples": [vars(s) for s in samples + overload],
                        "medians": rows,
                    },
                    indent=2,
                    default=str,
                )
            )
            print(f"\nwrote {args.json}")
    return 0


def _plan(
    args: argparse.Namespace, servers: dict[str, Server]
) -> list[tuple[str, list[str], Load]]:
    """(scenario, servers in interleaved order, load) for one round."""
    kafka = [n for n in servers if n.startswith("kafka") and n != "kafka-noauth"]
    c = args.connections
    plan: list[tuple[str, list[str], Load]] = []
    if "a" in args.scenarios:
        extra = ["kafka-noauth"] if "kafka-noauth" in servers else []
        plan.append(("a", ["control", *kafka, *extra], Load("single.lua", c)))
    if "b" in args.scenarios:
        paced = {"BENCH_RATE": str(args.paced_rate)}
        plan.append(("b", ["control", *kafka], Load("single_paced.lua", c, env=paced)))
    if "c" in args.scenarios:
        size = args.batch_size
        bc = args.batch_connections
        plan.append(("c", ["control", *kafka], Load("batch.lua", bc, size)))
        paced = {"BENCH_RATE": str(args.batch_paced_rate)}
        plan.append(("c-paced", ["control", *kafka], Load("batch_paced.lua", bc, size, paced)))
    if "d" in args.scenarios:
        plan.append(("d", ["control", "postgres"], Load("single.lua", c)))
    return plan


def _overload(args: argparse.Namespace, server: Server, base_env: dict[str, str]) -> list[Sample]:
    print("overload (scenario e): Kafka-sink ingestor, rising connection counts", flush=True)
    out = []
    for conns in (int(x) for x in args.overload_steps.split(",") if x):
        out.append(
            measure(
                "e-single",
                server,
                Load("single_statuses.lua", conns),
                rnd=1,
                args=args,
                base_env=base_env,
            )
        )
    for conns in (int(x) for x in args.overload_batch_steps.split(",") if x):
        out.append(
            measure(
                "e-batch",
                server,
                Load("batch_statuses.lua", conns, args.batch_size),
                rnd=1,
                args=args,
                base_env=base_env,
            )
        )
    return out


def _print_overload(samples: list[Sample]) -> None:
    print("\noverload     conns    req/s   records/s  p50 ms   p99 ms  status counts")
    for s in samples:
        counts = s.statuses or {"2xx": "?", "non-2xx": s.non_2xx}
        text = " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
        print(
            f"{s.scenario:<12} {s.connections:>5} {s.rps:>8,.0f} {s.records_per_s:>11,.0f}"
            f" {s.p50_ms:>7.2f} {s.p99_ms:>8.2f}  {text}"
        )


if __name__ == "__main__":
    sys.exit(main())
