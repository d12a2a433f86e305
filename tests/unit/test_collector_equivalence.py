"""Compose's Grafana Alloy and the native OpenTelemetry Collector run equivalent pipelines.

Each runtime's collector configuration is read as that runtime runs it (compose: the file the
resolved `alloy` service mounts at the path its command names, with the container's environment;
native: the `otel-collector` service's `--config` with its environment) and reduced to a
normalized form: receivers with their protocols, processors, exporters, pipelines, and the
receivers' ports. The forms must be equal but for where the receivers listen, and in each
runtime the ingestor's traces must go to that runtime's OTLP/HTTP receiver, on the same tracks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from dataplatform import composefiles
from dataplatform.cli.run import otlp_environment_for_network
from dataplatform.native.services import SERVICES, TRACK_SERVICES, Context, track_environment
from dataplatform.settings import Track

TRACKS: list[Track] = ["starter", "intermediate", "advanced"]
_ENV_REFERENCE = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def normalized(config_text: str, environment: dict[str, str]) -> dict[str, Any]:
    """The collector configuration as it runs with `environment`: what each receiver listens
    on (`{receiver: {protocol: (host, port)}}`) apart from everything else, which must match."""

    def substitute(match: re.Match[str]) -> str:
        return environment.get(match["name"], match["default"] or "")

    config = yaml.safe_load(_ENV_REFERENCE.sub(substitute, config_text))
    listen = {}
    for name, receiver in config["receivers"].items():
        protocols = receiver.get("protocols") or {}
        listen[name] = {
            protocol: (
                settings["endpoint"].rsplit(":", 1)[0],
                int(settings["endpoint"].rsplit(":", 1)[1]),
            )
            for protocol, settings in protocols.items()
        }
    return {
        "listen": listen,
        "pipeline": {
            "receivers": {name: sorted(listen[name]) for name in listen},
            "processors": config.get("processors"),
            "exporters": config.get("exporters"),
            "pipelines": config["service"]["pipelines"],
            "telemetry": config["service"].get("telemetry"),
        },
    }


def _compose(track: Track) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = composefiles.resolve(track)["services"]
    return services


def _compose_collector(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    alloy = services["alloy"]
    command = alloy["command"]
    assert "--config.format=otelcol" in command, "Alloy must read OpenTelemetry-Collector YAML"
    mounted = {volume["target"]: volume["source"] for volume in alloy.get("volumes", [])}
    config = Path(mounted[command[-1]])
    return normalized(config.read_text(encoding="utf-8"), alloy.get("environment") or {})


def _native_collector(ctx: Context) -> dict[str, Any]:
    service = SERVICES["otel-collector"]
    (config,) = [a.removeprefix("--config=") for a in service.command(ctx) if "--config=" in a]
    return normalized(Path(config).read_text(encoding="utf-8"), track_environment(ctx, service))


def _compose_ingestor_endpoint(services: dict[str, dict[str, Any]]) -> str | None:
    """OTEL_EXPORTER_OTLP_ENDPOINT as the container's command sets it (`--otlp-if-host URL`):
    compose's network resolves a service's name only when its profile runs it."""
    ingestor = services["ingestor"]
    command = ingestor.get("command") or []
    endpoint = (ingestor.get("environment") or {}).get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if "--otlp-if-host" in command:
        url = command[command.index("--otlp-if-host") + 1]
        endpoint = url if urlsplit(url).hostname in services else endpoint
    return endpoint


def test_compose_and_native_collectors_run_the_same_pipelines() -> None:
    compose = _compose_collector(_compose("advanced"))
    native = _native_collector(Context.load("advanced"))

    assert compose["pipeline"] == native["pipeline"]
    assert compose["listen"].keys() == native["listen"].keys()
    for receiver, protocols in native["listen"].items():
        assert protocols.keys() == compose["listen"][receiver].keys()
        assert all(host == "127.0.0.1" for host, _ in protocols.values()), protocols


def test_compose_collector_ports_are_published_on_loopback() -> None:
    services = _compose("advanced")
    listen = _compose_collector(services)["listen"]
    published = {
        int(port["target"]): port.get("host_ip") for port in services["alloy"].get("ports", [])
    }
    for protocols in listen.values():
        for _, port in protocols.values():
            assert published.get(port) == "127.0.0.1", (port, published)


@pytest.mark.parametrize("track", TRACKS)
def test_ingestor_sends_traces_to_its_runtimes_collector_on_the_same_tracks(
    track: Track,
) -> None:
    ctx = Context.load(track)
    native_env = track_environment(ctx, SERVICES["ingestor"])
    services = _compose(track)
    compose_endpoint = _compose_ingestor_endpoint(services)

    native_endpoint = native_env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert (native_endpoint is None) == (compose_endpoint is None), (track, compose_endpoint)
    assert ("otel-collector" in TRACK_SERVICES[track]) == (native_endpoint is not None)
    if native_endpoint is None or compose_endpoint is None:
        return
    native_http = _native_collector(ctx)["listen"]["otlp"]["http"]
    compose_http = _compose_collector(services)["listen"]["otlp"]["http"]
    native_url, compose_url = urlsplit(native_endpoint), urlsplit(compose_endpoint)
    assert (native_url.hostname, native_url.port) == native_http
    assert (compose_url.hostname, compose_url.port) == ("alloy", compose_http[1])
    assert native_env["OTEL_TRACES_EXPORTER"] == "otlp"


def test_otlp_environment_for_network_only_where_the_host_resolves() -> None:
    assert otlp_environment_for_network("http://localhost:4318") == {
        "OTEL_SERVICE_NAME": "ingestor",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318",
    }
    assert otlp_environment_for_network("http://no-such-service.invalid:4318") == {}


def test_normalized_differs_when_a_pipeline_differs() -> None:
    text = (Path(composefiles.ROOT) / "observability" / "otelcol.yaml").read_text(encoding="utf-8")
    changed = text.replace("exporters: [debug]", "exporters: []", 1)

    assert normalized(changed, {})["pipeline"] != normalized(text, {})["pipeline"]
