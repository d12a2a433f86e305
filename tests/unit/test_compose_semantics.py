"""What the schema cannot see in the compose files: wiring, pins, health, ports, settings.

Each check runs on every track (the services `docker compose --profile <track> up` starts) and
on each file combination users run (plain, with the SeaweedFS switch, with the test overlay).
The env var checks derive what is required from the pydantic settings classes themselves.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

import dataplatform.spark_settings as spark_settings_module
from dataplatform import settings as settings_module
from dataplatform.composefiles import (
    BASE,
    ROOT,
    TRACK_PROFILES,
    VARIANTS,
    bytes_of,
    depends_on,
    enabled,
    environment,
    interpolations,
    is_one_shot,
    merged_model,
    published_ports,
    required_dependencies,
    services,
)
from dataplatform.settings import PLACEHOLDER_SECRETS

TRACKS = list(TRACK_PROFILES)
CASES = [(variant, track) for variant in VARIANTS for track in TRACKS]
CASE_IDS = [f"{variant}-{track}" for variant, track in CASES]


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request: pytest.FixtureRequest) -> dict[str, Any]:
    return merged_model(*VARIANTS[request.param])


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return merged_model(BASE)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize(("variant", "track"), CASES, ids=CASE_IDS)
def test_enabled_services_closed_under_depends_on(variant: str, track: str) -> None:
    active = enabled(merged_model(*VARIANTS[variant]), track)
    missing = {
        f"{name} -> {dependency}"
        for name, spec in active.items()
        for dependency in required_dependencies(spec)
        if dependency not in active
    }
    assert not missing, f"`up` would fail: dependencies not enabled in {track}: {sorted(missing)}"


def test_unprofiled_services_depend_only_on_unprofiled(model: dict[str, Any]) -> None:
    all_services = services(model)
    starter = {name for name, spec in all_services.items() if not spec.get("profiles")}
    wrong = {
        f"{name} -> {dependency}"
        for name in starter
        for dependency in required_dependencies(all_services[name])
        if dependency not in starter
    }
    assert not wrong


def test_profiles_are_the_cumulative_tracks(model: dict[str, Any]) -> None:
    allowed = ({"intermediate", "advanced"}, {"advanced"})
    wrong = {
        name: spec["profiles"]
        for name, spec in services(model).items()
        if spec.get("profiles") and set(spec["profiles"]) not in allowed
    }
    assert not wrong, "profiles must be [intermediate, advanced] or [advanced]"


def test_build_contexts_and_dockerfiles_exist(model: dict[str, Any]) -> None:
    for name, spec in services(model).items():
        build = spec.get("build")
        if build is None:
            continue
        build = {"context": build} if isinstance(build, str) else build
        context = ROOT / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
        assert "image" in spec, f"{name}: a built image needs a pinned `image:` name"


def _bind_sources(spec: dict[str, Any]) -> list[str]:
    sources = []
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(volume["source"])
        elif str(volume).startswith((".", "/", "~")):
            sources.append(str(volume).split(":")[0])
    return sources


def test_bind_mounted_repository_paths_exist(model: dict[str, Any]) -> None:
    # Relative paths are the repository's own files; absolute ones (cAdvisor's /sys, ...) are
    # the Docker host's and cannot be checked here.
    missing = [
        f"{name}: {source}"
        for name, spec in services(model).items()
        for source in _bind_sources(spec)
        if source.startswith(".") and not (ROOT / source).exists()
    ]
    assert not missing


def test_named_volumes_are_declared(model: dict[str, Any]) -> None:
    declared = set(model.get("volumes") or {})
    used = {
        str(volume).split(":")[0]
        for spec in services(model).values()
        for volume in spec.get("volumes", [])
        if isinstance(volume, str) and not volume.startswith((".", "/", "~"))
    }
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(("variant", "track"), CASES, ids=CASE_IDS)
def test_no_host_port_collisions(variant: str, track: str) -> None:
    owners: dict[int, str] = {}
    for name, spec in enabled(merged_model(*VARIANTS[variant]), track).items():
        for port in published_ports(spec):
            assert port.host is not None, f"{name}: publish a fixed host port, not a random one"
            assert port.host not in owners, f"host port {port.host}: {owners[port.host]} and {name}"
            owners[port.host] = name


def test_published_ports_bind_loopback_only(model: dict[str, Any]) -> None:
    wrong = [
        f"{name}: {port}"
        for name, spec in services(model).items()
        for port in published_ports(spec)
        if port.ip != "127.0.0.1"
    ]
    assert not wrong, "publish as 127.0.0.1:<host>:<container>: never on every interface"


# --------------------------------------------------------------------------- images


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize("name", sorted(services(merged_model(BASE))))
def test_image_pinned_to_a_version(name: str) -> None:
    for variant in VARIANTS:
        spec = services(merged_model(*VARIANTS[variant]))[name]
        image = spec.get("image")
        assert image, f"{name} ({variant}): no image"
        if _DIGEST.search(image):
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name} ({variant}): {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name} ({variant}): {image} not pinned"


# --------------------------------------------------------------------------- lifecycle


def test_long_running_services_have_healthcheck(model: dict[str, Any]) -> None:
    problems = []
    for name, spec in services(model).items():
        if is_one_shot(name):
            if spec.get("restart", "no") not in ("no", "on-failure"):
                problems.append(f"{name}: a one-shot init step must not restart forever")
            continue
        check = spec.get("healthcheck") or {}
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
        elif "start_period" not in check:
            problems.append(f"{name}: healthcheck without start_period")
    assert not problems


def test_base_long_running_services_restart(base: dict[str, Any]) -> None:
    # The test overlay turns restarts off on purpose; the file users run must restart.
    wrong = [
        name
        for name, spec in services(base).items()
        if not is_one_shot(name) and spec.get("restart") not in ("unless-stopped", "always")
    ]
    assert not wrong


def test_dependants_wait_for_health_or_completion(model: dict[str, Any]) -> None:
    problems = []
    for name, spec in services(model).items():
        if isinstance(spec.get("depends_on"), list):
            problems.append(f"{name}: depends_on without conditions")
        for dependency, options in depends_on(spec).items():
            wanted = (
                "service_completed_successfully" if is_one_shot(dependency) else "service_healthy"
            )
            if options.get("condition") != wanted:
                problems.append(f"{name} -> {dependency}: condition must be {wanted}")
    assert not problems


def test_one_shot_init_steps_gate_someone(base: dict[str, Any]) -> None:
    all_services = services(base)
    gated = {dep for spec in all_services.values() for dep in depends_on(spec)}
    unused = [name for name in all_services if is_one_shot(name) and name not in gated]
    assert not unused, f"init steps nothing waits for: {unused}"


# --------------------------------------------------------------------------- settings


def _settings_classes() -> dict[str, type[BaseSettings]]:
    """Every settings class of the platform's code, by env prefix."""
    found: dict[str, type[BaseSettings]] = {}
    for module in (settings_module, spark_settings_module):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.model_config.get("env_prefix")
            ):
                found[value.model_config["env_prefix"]] = value
    return found


SETTINGS = _settings_classes()

#: Which settings classes the code of each compose service builds (by env prefix). The values
#: are the contract; the required variables and their names are read from the classes.
SERVICE_SETTINGS: dict[str, tuple[str, ...]] = {
    "ingestor": ("INGESTOR_", "POSTGRES_", "KAFKA_", "MONGODB_"),
    "document-landing": ("DOCUMENTS_", "MONGODB_", "POSTGRES_", "S3_"),
    "lake-exporter": ("EXPORTER_", "POSTGRES_", "S3_"),
    "postgres-init": ("POSTGRES_",),
    "s3-init": ("S3_",),
    "kafka-init": ("KAFKA_",),
    "landing": ("SPARK_", "S3_", "KAFKA_", "POSTGRES_"),
    # Reads only OPENMETADATA_JWT_PRIVATE_KEY (no settings class).
    "openmetadata-keys-init": (),
    # DAG tasks call the platform's library.
    "airflow-apiserver": ("POSTGRES_", "S3_", "KAFKA_"),
    "airflow-scheduler": ("POSTGRES_", "S3_", "KAFKA_"),
    "airflow-dag-processor": ("POSTGRES_", "S3_", "KAFKA_"),
    "airflow-triggerer": ("POSTGRES_", "S3_", "KAFKA_"),
}

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


#: Secret fields with no usable default that the service itself never reads.
NOT_READ_BY_THE_SERVICE = {
    "INGESTOR_API_KEY": "a key for the platform's own clients (see IngestorSettings.api_key)",
}


def _env_name(prefix: str, name: str) -> str:
    alias = SETTINGS[prefix].model_fields[name].validation_alias
    return alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper()


def required_env(prefix: str) -> list[str]:
    """Variables whose default is a placeholder secret: the code cannot work without them."""
    cls = SETTINGS[prefix]
    required = []
    for name, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        placeholder = (
            isinstance(default, SecretStr) and default.get_secret_value() in PLACEHOLDER_SECRETS
        )
        if placeholder and _env_name(prefix, name) not in NOT_READ_BY_THE_SERVICE:
            required.append(_env_name(prefix, name))
    return required


def loopback_defaults(prefix: str) -> list[str]:
    """Variables whose default points at 127.0.0.1: wrong inside a container."""
    cls = SETTINGS[prefix]
    return [
        _env_name(prefix, name)
        for name, field in cls.model_fields.items()
        if isinstance(field.get_default(call_default_factory=True), str)
        and any(host in field.get_default(call_default_factory=True) for host in _LOOPBACK)
    ]


def test_settings_introspection_finds_the_secrets() -> None:
    # Guards the introspection itself: it must see the secrets the platform is known to have.
    assert {"POSTGRES_PASSWORD"} <= set(required_env("POSTGRES_"))
    assert {"S3_ACCESS_KEY", "S3_SECRET_KEY"} <= set(required_env("S3_"))
    assert "KAFKA_BOOTSTRAP_SERVERS" in loopback_defaults("KAFKA_")


def test_service_settings_cover_every_platform_service(base: dict[str, Any]) -> None:
    platform_images = ("dataplatform/platform:", "dataplatform/spark:", "dataplatform/airflow:")
    runs_our_code = {
        name
        for name, spec in services(base).items()
        if spec["image"].startswith(platform_images)
        and "spark-class" not in " ".join(map(str, spec.get("command", [])))
        and name != "airflow-init"
    }
    assert runs_our_code == set(SERVICE_SETTINGS)
    assert {prefix for prefixes in SERVICE_SETTINGS.values() for prefix in prefixes} <= set(
        SETTINGS
    )


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_required_settings_env_set(model: dict[str, Any], name: str) -> None:
    env = environment(services(model)[name])
    for prefix in SERVICE_SETTINGS[name]:
        for variable in required_env(prefix):
            value = env.get(variable, "")
            assert value, f"{name}: {variable} is required by {SETTINGS[prefix].__name__}"
            refs = interpolations(value)
            assert refs and refs[0][1] == ":?", (
                f"{name}: {variable} must come from .env as ${{{variable}:?...}}, not a literal"
            )


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_loopback_defaults_overridden_in_containers(model: dict[str, Any], name: str) -> None:
    all_services = services(model)
    env = environment(all_services[name])
    for prefix in SERVICE_SETTINGS[name]:
        for variable in loopback_defaults(prefix):
            value = env.get(variable)
            assert value, f"{name}: {variable} defaults to loopback: the container itself"
            hosts = {
                re.sub(r"^\w+://", "", address).rsplit(":", 1)[0] for address in value.split(",")
            }
            for host in hosts:
                assert host == "0.0.0.0" or host in all_services, (
                    f"{name}: {variable}={value}: not a compose service"
                )


def test_platform_env_names_are_settings_fields(model: dict[str, Any]) -> None:
    # A typo in a variable name is silently ignored by pydantic-settings: catch it here.
    unknown = []
    for name in SERVICE_SETTINGS:
        for variable in environment(services(model)[name]):
            for prefix, cls in SETTINGS.items():
                if variable.startswith(prefix):
                    field = variable[len(prefix) :].lower()
                    if field not in cls.model_fields:
                        unknown.append(f"{name}: {variable} ({cls.__name__} has no {field!r})")
    assert not unknown


def test_kafka_listeners_match_clients(base: dict[str, Any]) -> None:
    all_services = services(base)
    kafka = environment(all_services["kafka"])
    advertised = dict(
        reversed(entry.split("://", 1)) for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    inter_broker = kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]
    # Containers use the listener advertised under the compose service name.
    internal = next(address for address, name in advertised.items() if name == inter_broker)
    for name in SERVICE_SETTINGS:
        if "KAFKA_" in SERVICE_SETTINGS[name]:
            assert environment(all_services[name])["KAFKA_BOOTSTRAP_SERVERS"] == internal, name
    # Host clients use the native default address, advertised and published on loopback.
    native = SETTINGS["KAFKA_"].model_fields["bootstrap_servers"].default
    assert native in advertised, f"host listener must be advertised as {native}"
    host_port = int(native.rsplit(":", 1)[1])
    assert any(
        p.host == host_port and p.container == host_port
        for p in published_ports(all_services["kafka"])
    )
    # The broker's storage is formatted with the cluster id native mode generates.
    assert interpolations(kafka["CLUSTER_ID"])[0][:2] == ("KAFKA_CLUSTER_ID", ":?")


# --------------------------------------------------------------------------- .env


def _env_example() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        key, sep, _ = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            names.add(key.strip())
    return names


def _required_interpolations() -> set[str]:
    names = set()
    for path in {path for paths in VARIANTS.values() for path in paths}:
        names |= {name for name, op, _ in interpolations(path.read_text()) if op == ":?"}
    return names


@pytest.mark.parametrize("variable", sorted(_required_interpolations()))
def test_required_variable_listed_in_env_example(variable: str) -> None:
    assert variable in _env_example(), f"{variable} is required by compose: list it in .env.example"


def test_no_literal_secrets_in_compose(model: dict[str, Any]) -> None:
    secret = re.compile(r"(PASSWORD|SECRET|_KEY)$")
    literal = [
        f"{name}: {variable}"
        for name, spec in services(model).items()
        for variable, value in environment(spec).items()
        if secret.search(variable) and not interpolations(value)
    ]
    assert not literal, "secrets come from .env as ${VAR:?...}"


# --------------------------------------------------------------------------- budget


def _budget_table() -> dict[str, float]:
    """`| <track> | <GiB> GiB | ...` rows of docs/CONTAINERS.md's budget table."""
    text = (ROOT / "docs" / "CONTAINERS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*(starter|intermediate|advanced)\s*\|\s*([\d.]+) GiB\s*\|", text, re.M)
    return {track: float(gib) for track, gib in rows}


@pytest.mark.parametrize("track", TRACKS)
def test_memory_budget_documented(base: dict[str, Any], track: str) -> None:
    running = {n: s for n, s in enabled(base, track).items() if not is_one_shot(n)}
    unbounded = [name for name, spec in running.items() if "mem_limit" not in spec]
    assert not unbounded, f"no mem_limit: {unbounded}"
    total = sum(bytes_of(spec["mem_limit"]) for spec in running.values()) / 1024**3
    assert _budget_table().get(track) == pytest.approx(total, abs=0.05), (
        f"docs/CONTAINERS.md: {track} needs {total:.1f} GiB (sum of mem_limit)"
    )
