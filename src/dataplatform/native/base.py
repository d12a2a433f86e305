"""The native runtime's shared types: a service, the context it runs in, the user's errors.

`services.py` (the platform's own services) and `airflow.py` (Airflow's four processes) both
build `Service`s from these, so neither has to import the other for them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    RuntimeSettings,
    S3Settings,
    Track,
    get_kafka_settings,
    get_postgres_settings,
    get_runtime_settings,
    get_s3_settings,
)


class PlatformError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


@dataclass(frozen=True)
class Context:
    """Everything a service definition needs: settings and paths."""

    runtime: RuntimeSettings
    postgres: PostgresSettings
    kafka: KafkaSettings
    s3: S3Settings
    track: Track

    @classmethod
    def load(cls, track: Track | None = None) -> Context:
        """Build from the cached settings (env vars and `.env`)."""
        runtime = get_runtime_settings()
        return cls(
            track=track or runtime.track,
            runtime=runtime,
            postgres=get_postgres_settings(),
            kafka=get_kafka_settings(),
            s3=get_s3_settings(),
        )

    def service_dir(self, name: str) -> Path:
        """`data/<name>`: the service's own state."""
        return self.runtime.data_dir / name

    def conf_dir(self, name: str) -> Path:
        """`data/run/<name>`: the service's rendered configuration."""
        return self.runtime.run_dir / name


@dataclass(frozen=True)
class Service:
    """One long-running native process and its lifecycle hooks.

    Attributes:
        name: the supervisord program name, also the compose service name.
        description: one line for `status`.
        ports: every TCP port it listens on (checked free before start).
        depends_on: services that must be healthy first.
        command: the argv to run, from the context.
        probe: True when the service is ready to serve.
        prepare: runs before start (render config, format storage); idempotent.
        initialise: runs once the service is ready (roles, topics, buckets); idempotent. Its
            compose twin is the one-shot `<name>-init` service.
        run_as: OS user to run as when the runtime runs as root.
        stop_signal: signal supervisord stops it with.
        requires: (check name, function) preflight checks returning a problem or None.
    """

    name: str
    description: str
    ports: Callable[[Context], tuple[int, ...]]
    command: Callable[[Context], list[str]]
    probe: Callable[[Context], bool]
    depends_on: tuple[str, ...] = ()
    prepare: Callable[[Context], None] | None = None
    initialise: Callable[[Context], None] | None = None
    run_as: str | None = None
    stop_signal: str = "TERM"
    stop_wait_s: int = 30
    environment: Callable[[Context], dict[str, str]] = field(default=lambda _ctx: {})
    preflight: tuple[Callable[[Context], str | None], ...] = ()


def host_port(address: str) -> tuple[str, int]:
    """Split `host:port`."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll `check` until it is true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()
