"""The OpenTelemetry Collector: its committed build manifest (one release for every module),
the one configuration compose's Alloy and the native collector both run, and how the advanced
track wires the ingestor to it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from dataplatform.native.services import (
    COLLECTOR_CONFIG,
    SERVICES,
    TRACK_SERVICES,
    Context,
    collector_binary,
    track_environment,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "otelcol"
#: Builder module -> the component name a collector config uses.
COMPONENTS = {
    "otlpreceiver": "receivers/otlp",
    "batchprocessor": "processors/batch",
    "debugexporter": "exporters/debug",
}


def _manifest() -> dict:
    return yaml.safe_load((BUILD / "builder-config.yaml").read_text(encoding="utf-8"))


def _modules() -> list[tuple[str, str]]:
    manifest = _manifest()
    return [
        tuple(entry["gomod"].split())  # type: ignore[misc]
        for kind in ("receivers", "processors", "exporters", "providers")
        for entry in manifest.get(kind, [])
    ]


def test_builder_manifest_pins_one_release_for_all_modules() -> None:
    versions = {version for module, version in _modules() if "/confmap/" not in module}
    providers = {version for module, version in _modules() if "/confmap/" in module}
    assert len(versions) == 1 and len(providers) == 1, (versions, providers)
    (release,) = versions
    assert _manifest()["dist"]["version"] == release.removeprefix("v")
    # The stable confmap modules (v1.x) ship with the same release (v0.x + 1.-series).
    go_mod = (BUILD / "go.mod").read_text(encoding="utf-8")
    for module, version in _modules():
        assert re.search(rf"^\s*{re.escape(module)} {re.escape(version)}$", go_mod, re.M), module


def test_generated_sources_register_exactly_the_manifest_components() -> None:
    sources = "".join(
        (BUILD / name).read_text(encoding="utf-8") for name in ("components.go", "main.go")
    )
    for module, _ in _modules():
        assert f'"{module}"' in sources, module
    imported = set(re.findall(r'"([\w./-]+/(?:receiver|processor|exporter)/\w+)"', sources))
    assert imported == {module for module, _ in _modules() if "/confmap/" not in module}


def test_collector_config_uses_only_built_components() -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    used = {
        f"{kind}/{name.split('/')[0]}"
        for pipeline in config["service"]["pipelines"].values()
        for kind in ("receivers", "processors", "exporters")
        for name in pipeline.get(kind, [])
    }
    built = {
        COMPONENTS[module.rsplit("/", 1)[1]] for module, _ in _modules() if "confmap" not in module
    }
    assert used == built


def test_collector_config_listens_where_the_environment_says() -> None:
    text = COLLECTOR_CONFIG.read_text(encoding="utf-8")
    assert "${env:OTELCOL_OTLP_GRPC_ENDPOINT:-0.0.0.0:4317}" in text
    assert "${env:OTELCOL_OTLP_HTTP_ENDPOINT:-0.0.0.0:4318}" in text
    config = yaml.safe_load(text)
    # Its own metrics endpoint would take port 8888 (SeaweedFS's filer natively).
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"


def test_native_collector_binds_loopback() -> None:
    ctx = Context.load("advanced")
    environment = track_environment(ctx, SERVICES["otel-collector"])
    assert environment["OTELCOL_OTLP_GRPC_ENDPOINT"].startswith("127.0.0.1:")
    assert environment["OTELCOL_OTLP_HTTP_ENDPOINT"].startswith("127.0.0.1:")
    assert SERVICES["otel-collector"].command(ctx)[-1] == f"--config={COLLECTOR_CONFIG}"


def test_ingestor_exports_traces_only_where_the_collector_runs() -> None:
    assert "otel-collector" in TRACK_SERVICES["advanced"]
    advanced = track_environment(Context.load("advanced"), SERVICES["ingestor"])
    assert advanced["OTEL_TRACES_EXPORTER"] == "otlp"
    assert advanced["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://127.0.0.1:")
    intermediate = track_environment(Context.load("intermediate"), SERVICES["ingestor"])
    assert "OTEL_TRACES_EXPORTER" not in intermediate


def test_built_collector_validates_the_config() -> None:
    binary = collector_binary()
    assert binary.exists(), f"{binary} missing: ./quick_start.sh builds tools/otelcol"
    result = subprocess.run(
        [str(binary), "validate", f"--config={COLLECTOR_CONFIG}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
