"""Preflight of a Docker host for `docker compose --profile <track> up` (`dataplatform doctor`).

Checks what users most often trip on: an old Compose (the overlays use `!override`), an engine
with less memory than the track's containers are allowed, and `.env` lacking a secret that
compose requires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from dataplatform import envfile
from dataplatform.composefiles import BASE, bytes_of, enabled, interpolations, merged_model
from dataplatform.settings import Track, env_file

#: `!override` in the overlay files needs Compose 2.24.4.
MIN_COMPOSE = (2, 24, 4)


@dataclass(frozen=True)
class DockerHost:
    """What `docker` reports about the engine it talks to."""

    compose_version: tuple[int, ...] | None
    memory_bytes: int


def inspect_host() -> DockerHost | None:
    """The Docker engine's facts, or None when no engine answers (native mode)."""
    if shutil.which("docker") is None:
        return None
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .MemTotal}}"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if info.returncode != 0 or not info.stdout.strip().isdigit():
        return None
    version = subprocess.run(
        ["docker", "compose", "version", "--short"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.stdout.strip())
    return DockerHost(
        compose_version=tuple(int(part) for part in match.groups()) if match else None,
        memory_bytes=int(info.stdout.strip()),
    )


def track_memory_limit(track: Track) -> int:
    """Sum of the `mem_limit` of every service the track's profile starts, in bytes."""
    services = enabled(merged_model(BASE), track)
    return sum(bytes_of(spec["mem_limit"]) for spec in services.values() if "mem_limit" in spec)


def compose_problems(host: DockerHost, track: Track) -> list[str]:
    """Problems of this Docker host for the track, each with its fix."""
    problems = []
    wanted = ".".join(map(str, MIN_COMPOSE))
    if host.compose_version is None:
        problems.append(f"Docker Compose v2 not found: install Compose {wanted} or later")
    elif host.compose_version < MIN_COMPOSE:
        found = ".".join(map(str, host.compose_version))
        problems.append(f"Docker Compose {found} is too old: {wanted} or later is needed")
    needed = track_memory_limit(track)
    if host.memory_bytes < needed:
        problems.append(
            f"the Docker engine has {host.memory_bytes / 1024**3:.1f} GiB of memory, the "
            f"{track} track's containers may use {needed / 1024**3:.1f} GiB: give the engine "
            "more memory (Docker Desktop: Settings > Resources) or run a smaller track"
        )
    present = envfile.parse(env_file().read_text(encoding="utf-8")) if env_file().exists() else {}
    required = {name for name, op, _ in interpolations(BASE.read_text()) if op == ":?"}
    missing = sorted(name for name in required if not present.get(name))
    if missing:
        problems.append(
            f"compose requires {', '.join(missing)} in .env: run `dataplatform env init`"
        )
    return problems
