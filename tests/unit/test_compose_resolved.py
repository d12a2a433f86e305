"""Resolve each compose profile with compose's own loader, then check what every container gets.

`tools/compose-resolve` (compose-go, built by quick_start.sh into .venv/bin) interpolates the
compose files with `.env.example` and applies the profile, as `docker compose --profile X config`
does. The tests below build the platform's settings objects from each container's resolved
environment and compare what would run with native mode's service model
(src/dataplatform/native/services.py). No Docker engine is needed; what is still unverified
without one is listed in docs/CONTAINERS.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from dataplatform import composefiles
from dataplatform.cli import main as cli
from dataplatform.composefiles import (
    BASE,
    ROOT,
    TEST_OVERLAY,
    bytes_of,
    enabled,
    merged_model,
)
from dataplatform.native import airflow as native_airflow
from dataplatform.native.services import (
    SERVICES,
    SHARED_INIT,
    TRACK_SERVICES,
    ingestor_sink,
)
from dataplatform.settings import (
    IngestorSettings,
    RuntimeSettings,
    Track,
    get_runtime_settings,
)
from dataplatform.spark_settings import SparkSettings

TRACKS: list[Track] = ["starter", "intermediate", "advanced"]


@cache
def _resolve_cached(track: str, files: tuple[Path, ...]) -> str:
    return json.dumps(composefiles.resolve(track, files))


def resolve(track: str, files: tuple[Path, ...] = (BASE,)) -> dict[str, Any]:
    """`composefiles.resolve`, run once per profile and file set (a fresh copy each call)."""
    return cast(dict[str, Any], json.loads(_resolve_cached(track, files)))


#: The file sets users and CI run: the plain file and the test overlay.
FILE_SETS = {"base": (BASE,), "test": (BASE, TEST_OVERLAY)}


@pytest.fixture(scope="module", params=[(t, f) for t in TRACKS for f in FILE_SETS], ids=str)
def resolved(request: pytest.FixtureRequest) -> tuple[Track, dict[str, Any]]:
    track, files = request.param
    return track, resolve(track, FILE_SETS[files])


def _services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return model["services"]


def _env(spec: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (spec.get("environment") or {}).items()}


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An empty process environment, and settings caches cleared before and after."""
    for key in list(os.environ):
        monkeypatch.delenv(key)
    get_runtime_settings.cache_clear()
    yield monkeypatch
    get_runtime_settings.cache_clear()


T = TypeVar("T", bound=BaseSettings)


def _settings(cls: type[T], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> T:
    """`cls` built from exactly `env`, as inside the container (no `.env` there)."""
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_runtime_settings.cache_clear()
    return cls(_env_file=None)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- the resolved model


@pytest.mark.parametrize("track", TRACKS)
def test_resolve_profile_services_equal_python_reader(track: Track) -> None:
    from_compose_go = set(_services(resolve(track)))
    assert from_compose_go == set(enabled(merged_model(BASE), track))


def test_resolve_reports_compose_loader_error(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: [missing]\n")
    with pytest.raises(RuntimeError, match="missing"):
        composefiles.resolve("starter", (broken,))


# --------------------------------------------------------------------------- defect 1: the sink


def _container_sink(spec: dict[str, Any], services: dict[str, Any]) -> str | None:
    """INGESTOR_SINK as the container's command sets it (`--kafka-sink-if-host NAME`)."""
    command = spec.get("command") or []
    if "--kafka-sink-if-host" not in command:
        return None
    host = command[command.index("--kafka-sink-if-host") + 1]
    # Compose's network resolves a service name when that service runs in the project.
    return "kafka" if host in services else "postgres"


def test_resolved_ingestor_sink_is_the_native_tracks(
    resolved: tuple[Track, dict[str, Any]], isolated_env: pytest.MonkeyPatch
) -> None:
    track, model = resolved
    services = _services(model)
    env = _env(services["ingestor"])
    sink = _container_sink(services["ingestor"], services)
    if sink:
        env["INGESTOR_SINK"] = sink
    settings = _settings(IngestorSettings, env, isolated_env)
    assert settings.sink == ingestor_sink(track), f"{track}: the ingestor writes to {settings.sink}"
    if settings.sink == "kafka":
        assert "kafka" in services, "the Kafka sink needs Kafka in the profile"


def test_sink_for_network_resolves_only_known_hosts() -> None:
    from dataplatform.cli.run import sink_for_network

    assert sink_for_network("localhost") == "kafka"
    assert sink_for_network("no-such-service.invalid") == "postgres"


# --------------------------------------------------------------------------- defect 3: Spark

#: Services that run Spark in local mode on purpose, and why.
LOCAL_MODE = {
    "landing": "a streaming query would hold the cluster's only worker core for good",
}


def _cluster_master(services: dict[str, Any]) -> str:
    command = services["spark-master"]["command"]
    host = command[command.index("--host") + 1]
    port = command[command.index("--port") + 1]
    return f"spark://{host}:{port}"


def test_resolved_spark_drivers_use_cluster_master(
    resolved: tuple[Track, dict[str, Any]], isolated_env: pytest.MonkeyPatch
) -> None:
    track, model = resolved
    services = _services(model)
    submitters = {
        name: spec
        for name, spec in services.items()
        if "AIRFLOW_CONN_SPARK_DEFAULT" in _env(spec) or "SPARK_MASTER" in _env(spec)
    }
    if track == "starter":
        assert not submitters
        return
    assert submitters
    master = _cluster_master(services)
    for name, spec in submitters.items():
        env = _env(spec)
        spark = _settings(SparkSettings, env, isolated_env)
        if name in LOCAL_MODE:
            assert spark.master.startswith("local["), name
            continue
        assert spark.master == master, f"{name}: the jobs' session runs on {spark.master}"
        connection = yaml.safe_load(env["AIRFLOW_CONN_SPARK_DEFAULT"])
        assert connection["host"] == master, f"{name}: spark-submit --master differs"


# --------------------------------------------------------------------------- URLs


_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?P<host>[A-Za-z][A-Za-z0-9_.-]*):(?P<port>\d+)")


def test_resolved_urls_point_at_services_of_same_profile(
    resolved: tuple[Track, dict[str, Any]],
) -> None:
    track, model = resolved
    services = _services(model)
    every_name = set(merged_model(BASE)["services"])
    wrong = []
    for name, spec in services.items():
        env = _env(spec)
        if _container_sink(spec, services) == "postgres":
            # The outbox sink never reads the Kafka address the ingestor gets for other profiles.
            env = {k: v for k, v in env.items() if not k.startswith("KAFKA_")}
        for key, value in env.items():
            for match in _ADDRESS.finditer(value):
                host = match["host"]
                if host in every_name and host not in services:
                    wrong.append(f"{name}: {key} -> {host} (not in the {track} profile)")
    assert not wrong


# --------------------------------------------------------------------------- defect 4: init steps


def test_native_initialise_has_compose_counterpart() -> None:
    model = merged_model(BASE)["services"]
    with_initialise = {name for name, s in SERVICES.items() if s.initialise}
    # Steps whose compose counterpart is not a `dataplatform init` one-shot, and what it is.
    elsewhere = {
        "airflow-apiserver": "airflow-init (pool) and AIRFLOW_CONN_*/AIRFLOW_VAR_* variables",
    }
    assert with_initialise == set(SHARED_INIT) | set(elsewhere)
    for name in SHARED_INIT:
        one_shot = model.get(f"{name}-init")
        assert one_shot, f"no compose `{name}-init` for native {name}'s initialise"
        assert one_shot["command"] == ["dataplatform", "init", name]
        assert one_shot.get("profiles") == model[name].get("profiles"), name


@pytest.mark.parametrize("track", TRACKS)
def test_resolved_init_steps_run_in_every_track(track: Track) -> None:
    services = _services(resolve(track))
    for name in TRACK_SERVICES[track]:
        if name in SHARED_INIT:
            assert f"{name}-init" in services, f"{track}: {name}'s initialise never runs"


def test_airflow_objects_match_native_initialise() -> None:
    services = _services(resolve("advanced"))
    env = _env(services["airflow-scheduler"])
    conn = f"AIRFLOW_CONN_{native_airflow.SPARK_CONNECTION_ID.upper()}"
    assert conn in env
    for variable in (native_airflow.JOBS_DIR_VARIABLE, native_airflow.JARS_VARIABLE):
        assert f"AIRFLOW_VAR_{variable.upper()}" in env
    assert f"pools set {native_airflow.SPARK_POOL} " in " ".join(
        services["airflow-init"]["command"]
    )


def test_cli_init_unknown_service_named() -> None:
    result = CliRunner().invoke(cli.app, ["init", "mystery"])
    assert result.exit_code == 1
    assert "mystery" in result.output


# --------------------------------------------------------------------------- defect 5: Postgres


def test_postgres_major_version_same_both_ways() -> None:
    services = _services(resolve("starter"))
    tag = services["postgres"]["image"].split(":", 1)[1]
    compose_major = tag.split(".", 1)[0]
    native_dir = RuntimeSettings.model_fields["postgres_bin_dir"].default
    native_major = Path(native_dir).parent.name
    assert compose_major == native_major, f"compose {tag}, native {native_dir}"
    dockerfile = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    assert f"postgresql-client-{native_major}" in dockerfile, "no pg_dump for platform_backup"


# --------------------------------------------------------------------------- paths in images

#: What the base images and the Debian packages the Dockerfiles install ship, by path prefix.
SHIPPED = {
    "default-jre-headless": "/usr/lib/jvm/default-java",
    "postgresql-client-15": "/usr/lib/postgresql/15/bin",
}
_CREATES = (
    re.compile(r"-m venv (?P<path>/\S+)"),
    re.compile(r"ln -s \S+ (?P<path>/\S+)"),
    re.compile(r"mkdir -p (?P<path>(?:/\S+ ?)+)"),
    re.compile(r"^COPY (?:--\S+ )*\S+(?: \S+)* (?P<path>/\S+)$", re.MULTILINE),
)
#: Environment variables naming a path the container relies on.
PATH_VARIABLES = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "JAVA_HOME", "DATAPLATFORM_JARS_DIR")


def _created_paths(dockerfile: str) -> set[str]:
    created = set()
    for pattern in _CREATES:
        for match in pattern.finditer(dockerfile):
            created.update(match["path"].split())
    for package, path in SHIPPED.items():
        if re.search(rf"apt-get install[^\n]*\b{re.escape(package)}\b", dockerfile):
            created.add(path)
    return created


def _image_env(dockerfile: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for match in re.finditer(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.MULTILINE):
        for item in shlex.split(match[1].replace("\\\n", " ")):
            key, _, value = item.partition("=")
            env[key] = value
    return env


DOCKERFILES = {
    "dataplatform/airflow": ROOT / "docker" / "airflow" / "Dockerfile",
    "dataplatform/spark": ROOT / "pyspark_jobs" / "Dockerfile",
    "dataplatform/platform": ROOT / "fastapi_app" / "Dockerfile",
}


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_paths_containers_rely_on_exist_in_image(image: str) -> None:
    dockerfile = DOCKERFILES[image].read_text()
    created = _created_paths(dockerfile)
    env = _image_env(dockerfile)
    for spec in _services(resolve("advanced")).values():
        if spec.get("image", "").startswith(image + ":"):
            env.update(_env(spec))
    missing = [
        f"{name}={env[name]}"
        for name in PATH_VARIABLES
        # The path itself, something under it (a folder holding what was copied) or above it.
        if name in env
        and not any(env[name].startswith(path) or path.startswith(env[name]) for path in created)
    ]
    assert not missing, f"{image}: not created by its Dockerfile nor shipped: {missing}"


# --------------------------------------------------------------------------- defect 7: limits

_XMX = re.compile(r"-Xmx(\d+[kmgKMG]?)")
#: spark-class starts daemons with this heap unless SPARK_DAEMON_MEMORY says otherwise.
SPARK_DAEMON_DEFAULT = "1g"
#: Room for the JVM's own memory, Python and the OS inside each limit.
HEADROOM = 256 * 1024**2


def _heaps(spec: dict[str, Any]) -> list[int]:
    env = _env(spec)
    heaps = []
    for key in ("KAFKA_HEAP_OPTS", "OPENSEARCH_JAVA_OPTS", "OPENMETADATA_HEAP_OPTS"):
        heaps += [bytes_of(size) for size in _XMX.findall(env.get(key, ""))]
    command = spec.get("command") or []
    if any("spark-class" in part for part in command):
        heaps.append(bytes_of(env.get("SPARK_DAEMON_MEMORY", SPARK_DAEMON_DEFAULT)))
        if "--memory" in command:  # a worker's executors
            heaps.append(bytes_of(command[command.index("--memory") + 1]))
    if "SPARK_DRIVER_MEMORY" in env:
        heaps.append(bytes_of(env["SPARK_DRIVER_MEMORY"]))
    test = " ".join((spec.get("healthcheck") or {}).get("test") or [])
    if "kafka-" in test:  # Kafka's tools start a JVM with the broker's heap unless told
        own = _XMX.findall(test)
        heaps += [bytes_of(size) for size in own] or [
            bytes_of(size) for size in _XMX.findall(env.get("KAFKA_HEAP_OPTS", ""))
        ]
    return heaps


def test_resolved_jvm_heaps_fit_mem_limit(resolved: tuple[Track, dict[str, Any]]) -> None:
    _, model = resolved
    over = []
    for name, spec in _services(model).items():
        heaps = _heaps(spec)
        if heaps and sum(heaps) > int(spec["mem_limit"]) - HEADROOM:
            over.append(
                f"{name}: heaps {sum(heaps) >> 20} MiB, limit {int(spec['mem_limit']) >> 20}"
            )
    assert not over


def _seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def test_resolved_stop_grace_matches_native_stop_wait() -> None:
    services = _services(resolve("advanced"))
    for name, service in SERVICES.items():
        if name not in services or service.stop_wait_s <= 10:  # docker's default: 10 s
            continue
        grace = services[name].get("stop_grace_period")
        assert grace, f"{name}: natively {service.stop_wait_s}s to stop, compose kills after 10s"
        assert _seconds(grace) >= service.stop_wait_s, name


def test_resolved_every_service_has_memory_limit() -> None:
    services = _services(resolve("advanced"))
    assert [name for name, spec in services.items() if not spec.get("mem_limit")] == []


def test_landing_healthcheck_is_native_probe() -> None:
    services = _services(resolve("intermediate"))
    test = " ".join(services["landing"]["healthcheck"]["test"])
    assert "landing_healthy()" in test
    assert "4040" not in test, "the Spark UI answers while the stream is stalled"


# --------------------------------------------------------------------------- defect 2: Alloy

#: Stability of the Alloy components that OpenTelemetry-Collector YAML converts to (Alloy docs,
#: one page per `otelcol.*` component). A component missing here fails the test: look it up.
ALLOY_STABILITY = {
    "receivers/otlp": "generally-available",
    "processors/batch": "generally-available",
    "processors/memory_limiter": "generally-available",
    "exporters/otlp": "generally-available",
    "exporters/otlphttp": "generally-available",
    "exporters/debug": "experimental",
}
LEVELS = ["generally-available", "public-preview", "experimental"]


def test_alloy_components_allowed_by_stability_level() -> None:
    services = _services(resolve("advanced"))
    command = services["alloy"]["command"]
    flag = next((c for c in command if c.startswith("--stability.level=")), None)
    level = flag.split("=", 1)[1] if flag else "generally-available"
    config_path = next(c for c in command if c.endswith(".yaml"))
    mount = next(
        v for v in services["alloy"]["volumes"] if v["target"] == config_path
    )  # the file compose mounts there
    config = yaml.safe_load(Path(mount["source"]).read_text())
    used = {
        f"{kind}/{name.split('/')[0]}"
        for pipeline in config["service"]["pipelines"].values()
        for kind in ("receivers", "processors", "exporters")
        for name in pipeline.get(kind, [])
    }
    unknown = used - set(ALLOY_STABILITY)
    assert not unknown, f"look up their stability in Alloy's docs: {sorted(unknown)}"
    too_new = [c for c in used if LEVELS.index(ALLOY_STABILITY[c]) > LEVELS.index(level)]
    assert not too_new, f"alloy refuses {too_new} at --stability.level={level}"


# --------------------------------------------------------------------------- defects 6 and 8

#: OpenMetadata's image default Fernet key (public, in its published compose files).
OPENMETADATA_PUBLIC_FERNET = "jJ/9sz0g0OHxsfxOoSfdFdmk3ysNmPRnH3TUAbz3IHA="


def test_openmetadata_fernet_key_from_env_file() -> None:
    services = _services(resolve("advanced"))
    for name in ("openmetadata-init", "openmetadata-server"):
        key = _env(services[name]).get("FERNET_KEY")
        assert key and key != OPENMETADATA_PUBLIC_FERNET, name
    assert "OPENMETADATA_FERNET_KEY=<generate-fernet-key>" in (ROOT / ".env.example").read_text()


#: The search engines and PostgreSQL each OpenMetadata release line documents as supported
#: ("Minimum Requirements", docs.open-metadata.org/<line>/deployment/minimum-requirements):
#: 2.0.x: OpenSearch 3.x from 3.0.0 (3.3.0 recommended), Elasticsearch 9.x, PostgreSQL 15 or
#: later; 2.1.x: OpenSearch 3.x from 3.4.0. A new line must be looked up and added here.
OPENMETADATA_SUPPORTED: dict[str, dict[str, Any]] = {
    "2.0": {"opensearch": ((3, 0, 0), (4, 0, 0)), "elasticsearch": ((9, 0, 0), (10, 0, 0))},
    "2.1": {"opensearch": ((3, 4, 0), (4, 0, 0)), "elasticsearch": ((9, 0, 0), (10, 0, 0))},
}
OPENMETADATA_MIN_POSTGRES = 15
SEARCH_IMAGES = {
    "opensearch": "opensearchproject/opensearch",
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch",
}


def _image_version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    match = re.match(r"(\d+(?:\.\d+)*)", tag)
    assert match, f"{image}: no version in the tag"
    return tuple(int(part) for part in match[1].split("."))


def test_openmetadata_search_engine_is_a_documented_pair() -> None:
    services = _services(resolve("advanced"))
    versions = {services[n]["image"] for n in ("openmetadata-init", "openmetadata-server")}
    assert len(versions) == 1, f"init and server run different OpenMetadata: {versions}"
    line = ".".join(map(str, _image_version(versions.pop())[:2]))
    assert line in OPENMETADATA_SUPPORTED, f"OpenMetadata {line}: look up its supported pair"
    env = _env(services["openmetadata-server"])
    engine = env["SEARCH_TYPE"]
    search = services[env["ELASTICSEARCH_HOST"]]["image"]
    assert search.startswith(SEARCH_IMAGES[engine] + ":"), f"{engine} served by {search}"
    low, high = OPENMETADATA_SUPPORTED[line][engine]
    assert low <= _image_version(search) < high, f"OpenMetadata {line} does not support {search}"
    postgres = services[env["DB_HOST"]]["image"]
    assert _image_version(postgres)[0] >= OPENMETADATA_MIN_POSTGRES, postgres


def test_airflow_secrets_derived_as_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services(resolve("advanced"))
    monkeypatch.setenv("AIRFLOW_SECRET_KEY", "a-root-secret")
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")  # about derivation, not secrets
    native_airflow.get_airflow_settings.cache_clear()
    settings = native_airflow.AirflowSettings(_env_file=None)  # type: ignore[call-arg]
    config = native_airflow.render_config(Path("/airflow"), settings, _pg())
    native = {
        "AIRFLOW__CORE__FERNET_KEY": config["core"]["fernet_key"],
        "AIRFLOW__API__SECRET_KEY": config["api"]["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": config["api_auth"]["jwt_secret"],
    }
    runner = CliRunner()
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        env = _env(services[name])
        for option, value in native.items():
            assert option not in env, f"{name}: {option} would differ from native"
            command = shlex.split(env[f"{option}_CMD"])
            assert command[:2] == ["dataplatform", "airflow-key"], (name, option)
            result = runner.invoke(cli.app, command[1:])
            assert result.exit_code == 0, result.output
            assert result.output.strip() == value, (name, option)
    native_airflow.get_airflow_settings.cache_clear()


def _pg() -> Any:
    from dataplatform.settings import PostgresSettings

    return PostgresSettings(_env_file=None)  # type: ignore[call-arg]


def _native_kafka_properties() -> dict[str, str]:
    text = (ROOT / "src" / "dataplatform" / "native" / "kafka" / "server.properties").read_text()
    return dict(
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


#: Native broker keys compose expresses differently (two listeners, a static voter, the
#: image's own data folder), and what compose sets instead.
KAFKA_DIFFERENT = {
    "controller.quorum.bootstrap.servers": "KAFKA_CONTROLLER_QUORUM_VOTERS",
    "listeners": "KAFKA_LISTENERS",
    "advertised.listeners": "KAFKA_ADVERTISED_LISTENERS",
    "inter.broker.listener.name": "KAFKA_INTER_BROKER_LISTENER_NAME",
    "listener.security.protocol.map": "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "log.dirs": "KAFKA_LOG_DIRS",
}


def test_kafka_broker_settings_match_native() -> None:
    env = _env(_services(resolve("intermediate"))["kafka"])
    differ = []
    for key, value in _native_kafka_properties().items():
        variable = "KAFKA_" + key.upper().replace(".", "_")
        if key in KAFKA_DIFFERENT:
            assert KAFKA_DIFFERENT[key] in env, key
            continue
        if "${" in value:  # rendered from settings: compose reads the same .env variable
            assert env.get(variable), key
            continue
        if env.get(variable) != value:
            differ.append(f"{key}: native {value}, compose {env.get(variable)}")
    assert not differ


# --------------------------------------------------------------------------- compose-plan


@pytest.mark.parametrize("track", TRACKS)
def test_compose_plan_lists_profile_services(track: Track) -> None:
    result = CliRunner().invoke(cli.app, ["compose-plan", "--track", track])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.splitlines()[1:] if line.strip()}
    assert listed == set(_services(resolve(track)))
