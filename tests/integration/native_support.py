"""Helpers of the tests that start one native service from its definition on free ports, with
settings taken from the environment the test sets."""

from __future__ import annotations

import socket

from dataplatform import settings
from dataplatform.lake import get_lakehouse_settings


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port nothing listens on now (TCP, or UDP with `socket.SOCK_DGRAM`)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose next port is free too (Kafka's controller listens on port + 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")


def clear_settings() -> None:
    """Forget every cached settings object, so the next reads see the environment again."""
    for name in dir(settings):
        getter = getattr(settings, name)
        if name.startswith("get_") and hasattr(getter, "cache_clear"):
            getter.cache_clear()
    get_lakehouse_settings.cache_clear()
