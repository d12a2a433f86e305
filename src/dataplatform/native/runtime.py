"""`up`, `down`, `status` and `doctor` for the native runtime.

`up` checks everything first (ports, jars, Java, binaries, memory, disk) and fails fast with
the fix, then starts each service in dependency order, waits for its readiness probe, and runs
its idempotent init step (roles and databases, topics, bucket).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from dataplatform.native import supervisor
from dataplatform.native.base import Context, PlatformError, Service, port_open, wait_until
from dataplatform.native.services import SERVICES, TRACK_BUDGET, TRACK_SERVICES, services_for
from dataplatform.settings import TRACKS, Track, env_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A preflight finding: what is wrong and the command that fixes it."""

    check: str
    message: str


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `dataplatform status`."""

    name: str
    state: str
    pid: int | None
    ports: tuple[int, ...]
    healthy: bool
    description: str


def _available_memory_gib() -> float:
    with Path("/proc/meminfo").open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _running_names(ctx: Context) -> set[str]:
    return {
        name
        for name, info in supervisor.process_info(ctx).items()
        if info["statename"] in ("RUNNING", "STARTING")
    }


def preflight(ctx: Context, track: Track) -> list[Problem]:
    """Everything that would stop `up` for this track, each with its fix."""
    problems: list[Problem] = []
    if not env_file().exists():
        problems.append(Problem(".env", f"{env_file()} is missing: run `dataplatform env init`"))
    running = _running_names(ctx)
    for service in services_for(track):
        for check in service.preflight:
            message = check(ctx)
            if message and Problem(service.name, message) not in problems:
                problems.append(Problem(service.name, message))
        if service.name in running:
            continue
        for port in service.ports(ctx):
            if port_open("127.0.0.1", port):
                problems.append(
                    Problem(
                        service.name,
                        f"port {port} is already in use, so {service.name} cannot listen on it: "
                        f"find the process with `ss -ltnp 'sport = :{port}'` and stop it, "
                        "or change the port in .env",
                    )
                )
    memory_gib, disk_gib = TRACK_BUDGET[track]
    already = bool(running)
    if not already and _available_memory_gib() < memory_gib:
        problems.append(
            Problem(
                "memory",
                f"the {track} track needs about {memory_gib:.0f} GiB of free memory, "
                f"{_available_memory_gib():.1f} GiB is available: stop other programs or use "
                "a smaller track (`--track starter`)",
            )
        )
    ctx.runtime.data_dir.mkdir(parents=True, exist_ok=True)
    free_gib = shutil.disk_usage(ctx.runtime.data_dir).free / 1024**3
    if free_gib < disk_gib:
        problems.append(
            Problem(
                "disk",
                f"the {track} track needs {disk_gib:.0f} GiB free in {ctx.runtime.data_dir}, "
                f"{free_gib:.1f} GiB is free: free space or set DATAPLATFORM_DATA_DIR",
            )
        )
    return problems


def track_path(ctx: Context) -> Path:
    """`data/run/track`: the track `up` started last, read by `status` and `doctor`."""
    return ctx.runtime.run_dir / "track"


def running_track(ctx: Context) -> Track | None:
    """The track of the running platform, or None when nothing runs."""
    if not supervisor.is_running(ctx):
        return None
    try:
        value = track_path(ctx).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return next((track for track in TRACKS if track == value), None)


def up(ctx: Context, track: Track, *, progress: Callable[[str], None] = log.info) -> None:
    """Start the track's services in dependency order; fail fast with the fix.

    The started track decides every service's environment (the ingestor's sink, which
    downstream services to expect), whatever `DATAPLATFORM_TRACK` in `.env` says.
    """
    ctx = dataclasses.replace(ctx, track=track)
    problems = preflight(ctx, track)
    if problems:
        raise PlatformError(
            "cannot start the platform:\n"
            + "\n".join(f"  - [{p.check}] {p.message}" for p in problems)
        )
    for service in services_for(track):
        if service.prepare:
            service.prepare(ctx)
    supervisor.start_daemon(ctx)
    track_path(ctx).write_text(track, encoding="utf-8")
    for service in services_for(track):
        started = time.monotonic()
        _start(ctx, service, progress)
        progress(f"{service.name} ready in {time.monotonic() - started:.1f}s")


#: How long a started dependency may fail its probe before a dependent refuses to start: one
#: probe times out now and then on a loaded 2-core host (an API server busy parsing DAGs).
DEPENDENCY_GRACE_S = 60.0


def _start(ctx: Context, service: Service, progress: Callable[[str], None]) -> None:
    for name in service.depends_on:
        if not wait_until(partial(SERVICES[name].probe, ctx), timeout_s=DEPENDENCY_GRACE_S):
            raise PlatformError(
                f"{service.name} needs {name}, which is not healthy; last lines of "
                f"{ctx.runtime.logs_dir / (name + '.log')}:\n{supervisor.tail(ctx, name)}"
            )
    progress(f"starting {service.name}")
    supervisor.start_program(ctx, service.name)
    if not wait_until(lambda: service.probe(ctx), timeout_s=ctx.runtime.start_timeout_s):
        raise PlatformError(
            f"{service.name} did not become ready within {ctx.runtime.start_timeout_s:.0f}s; "
            f"last lines of {ctx.runtime.logs_dir / (service.name + '.log')}:\n"
            f"{supervisor.tail(ctx, service.name)}"
        )
    if service.initialise:
        service.initialise(ctx)


def descendants(root: int) -> set[int]:
    """`root` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        found |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
    return found


def down(ctx: Context, grace_s: float = 60) -> list[int]:
    """Stop every service and supervisord, and wait until every process under them is gone.

    A service's main process can exit while a child is still shutting down (a Spark driver's
    JVM runs its shutdown hooks after Python has gone): such a child would hold its ports and
    could still commit to a table after `up` started a new writer. Children still running
    `grace_s` after supervisord stopped are killed. Returns the PIDs that were stopped.
    """
    daemon = supervisor.supervisord_pid(ctx)
    if daemon is None:
        return []
    tree = descendants(daemon)
    supervisor.shutdown(ctx)
    if not wait_until(lambda: not any(alive(pid) for pid in tree), timeout_s=grace_s):
        for pid in tree:
            if alive(pid):
                log.warning("PID %d still running %.0fs after shutdown: killing it", pid, grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not wait_until(lambda: not any(alive(pid) for pid in tree), timeout_s=30):
            raise PlatformError(f"processes still running after SIGKILL: {sorted(tree)}")
    return sorted(tree)


def status(ctx: Context, track: Track | None = None) -> list[ServiceStatus]:
    """The state of every service of the track (all known services without a track)."""
    info = supervisor.process_info(ctx)
    names = TRACK_SERVICES[track] if track else tuple(SERVICES)
    rows = []
    for name in names:
        service = SERVICES[name]
        entry = info.get(name, {})
        state = entry.get("statename", "STOPPED" if info else "DOWN")
        rows.append(
            ServiceStatus(
                name=name,
                state=state,
                pid=entry.get("pid") or None,
                ports=service.ports(ctx),
                healthy=state == "RUNNING" and service.probe(ctx),
                description=service.description,
            )
        )
    return rows


def alive(pid: int) -> bool:
    """True when a process with this PID exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
