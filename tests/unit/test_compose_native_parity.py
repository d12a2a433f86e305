"""Compose and native mode start the same services per track, so they cannot drift apart.

Native mode's services and tracks are `dataplatform.native.services.SERVICES` and
`TRACK_SERVICES`. Every compose service is either the twin of a native service (table
`TWINS`), or compose-only with the reason written down (`COMPOSE_ONLY`). A native service added
to a track without its compose twin fails here, and so does a compose service added without a
native twin or a reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from dataplatform.composefiles import (
    BASE,
    TRACK_PROFILES,
    depends_on,
    enabled,
    interpolations,
    merged_model,
    published_ports,
)
from dataplatform.native.airflow import AirflowSettings
from dataplatform.native.services import SERVICES, TRACK_SERVICES
from dataplatform.settings import (
    CollectorSettings,
    ExporterSettings,
    IngestorSettings,
    KafkaSettings,
    MongoSettings,
    PostgresSettings,
    PrometheusSettings,
    S3Settings,
)

#: compose service -> the native service that does the same. An init step maps to the native
#: service whose `initialise` hook does its work.
TWINS: dict[str, str] = {
    "postgres": "postgres",
    "postgres-init": "postgres",  # seed the reference data
    "s3": "s3",  # MinIO (or SeaweedFS with the overlay); natively SeaweedFS
    "s3-init": "s3",  # ensure_bucket
    "ingestor": "ingestor",
    "lake-exporter": "lake-exporter",
    "kafka": "kafka",
    "kafka-init": "kafka",  # ensure_topics
    "landing": "landing",
    "airflow-init": "airflow-apiserver",  # `airflow db migrate` before the API server starts
    "airflow-apiserver": "airflow-apiserver",
    "airflow-scheduler": "airflow-scheduler",
    "airflow-dag-processor": "airflow-dag-processor",
    "airflow-triggerer": "airflow-triggerer",
    "alloy": "otel-collector",  # natively an OpenTelemetry Collector runs the same config
    "prometheus": "prometheus",  # Debian's prometheus
    "statsd-exporter": "statsd-exporter",  # the same release, installed with go install
    "mongodb": "mongodb",  # FerretDB speaking the MongoDB wire protocol
    "document-landing": "document-landing",
}

#: compose services with no native twin, and why.
COMPOSE_ONLY: dict[str, str] = {
    "spark-master": "native Spark runs in local mode inside each job; no cluster",
    "spark-worker": "native Spark runs in local mode inside each job; no cluster",
    "spark-history": "native jobs are inspected in their own Spark UI; no event-log server",
    "grafana": "no Grafana build is obtainable natively; dashboards are validated as files",
    "cadvisor": "container metrics: there are no containers natively",
    "marquez": "Marquez's server is not served by the Maven mirror; natively the lineage "
    "events land in a Delta table that `dataplatform lineage` reads",
    "marquez-web": "Marquez's UI; natively `dataplatform lineage` prints the graph",
    "openmetadata-keys-init": "OpenMetadata cannot run natively (release tarball only)",
    "openmetadata-search": "OpenMetadata cannot run natively (release tarball only)",
    "openmetadata-init": "OpenMetadata cannot run natively (release tarball only)",
    "openmetadata-server": "OpenMetadata cannot run natively (release tarball only)",
    "spline-arangodb": "Spline is compose-only: no ArangoDB build is obtainable natively",
    "spline-db-init": "Spline is compose-only: no ArangoDB build is obtainable natively",
    "spline-rest": "Spline is compose-only: no agent bundle for Spark 3.5 nor ArangoDB natively",
    "spline-ui": "Spline is compose-only: its server does not run natively",
}

#: Native twins compose already runs but native mode does not start in that track yet. Each
#: entry must disappear once `TRACK_SERVICES` gains it (the test says so).
PLANNED: dict[str, set[str]] = {
    "starter": set(),
    "intermediate": set(),
    "advanced": set(),
}


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return merged_model(BASE)


def test_every_compose_service_is_classified(base: dict[str, Any]) -> None:
    names = set(base["services"])
    assert not set(TWINS) & set(COMPOSE_ONLY)
    unclassified = names - set(TWINS) - set(COMPOSE_ONLY)
    assert not unclassified, f"add them to TWINS or COMPOSE_ONLY: {sorted(unclassified)}"
    stale = (set(TWINS) | set(COMPOSE_ONLY)) - names
    assert not stale, f"no such compose service: {sorted(stale)}"


def test_every_native_service_has_a_compose_twin() -> None:
    assert set(SERVICES) <= set(TWINS.values()), sorted(set(SERVICES) - set(TWINS.values()))


@pytest.mark.parametrize("track", list(TRACK_PROFILES))
def test_track_runs_same_services_both_ways(base: dict[str, Any], track: str) -> None:
    from_compose = {TWINS[name] for name in enabled(base, track) if name in TWINS}
    native = set(TRACK_SERVICES[track])  # type: ignore[index]
    planned = PLANNED[track]

    assert not native - from_compose, f"native {track} services without a compose twin"
    assert not from_compose - native - planned, f"compose {track} services missing natively"
    assert not planned & native, f"now native in {track}: remove from PLANNED {planned & native}"
    assert planned <= from_compose, f"PLANNED names compose does not run: {planned - from_compose}"


#: Native dependencies the compose twin does not have, and why.
NATIVE_ONLY_DEPENDENCIES: dict[tuple[str, str], str] = {
    ("mongodb", "postgres"): "FerretDB stores documents in PostgreSQL; MongoDB has its own storage",
}


def test_native_dependencies_are_compose_dependencies(base: dict[str, Any]) -> None:
    services = base["services"]
    missing = []
    for name, twin in TWINS.items():
        if twin not in SERVICES or name.endswith("-init"):
            continue
        compose_deps = {TWINS.get(dep, dep) for dep in depends_on(services[name])}
        missing += [
            f"{name} -> {dep}"
            for dep in SERVICES[twin].depends_on
            if dep not in compose_deps and (twin, dep) not in NATIVE_ONLY_DEPENDENCIES
        ]
    assert not missing, "compose must wait for what native mode waits for"


def _default_port(url_or_address: str) -> int:
    return int(url_or_address.rstrip("/").rsplit(":", 1)[1])


#: The port host-side clients use for a twin, from the settings' defaults (native mode's port).
NATIVE_PORTS: dict[str, int] = {
    "postgres": PostgresSettings.model_fields["port"].default,
    "s3": _default_port(S3Settings.model_fields["endpoint_url"].default),
    "kafka": _default_port(KafkaSettings.model_fields["bootstrap_servers"].default),
    "ingestor": IngestorSettings.model_fields["port"].default,
    "lake-exporter": ExporterSettings.model_fields["metrics_port"].default,
    "airflow-apiserver": AirflowSettings.model_fields["port"].default,
    "prometheus": PrometheusSettings.model_fields["port"].default,
    "alloy": CollectorSettings.model_fields["http_port"].default,
    "mongodb": MongoSettings.model_fields["port"].default,
}


@pytest.mark.parametrize("name", sorted(NATIVE_PORTS))
def test_published_port_equals_native_port(base: dict[str, Any], name: str) -> None:
    hosts = {port.host for port in published_ports(base["services"][name])}
    assert NATIVE_PORTS[name] in hosts, f"{name}: host clients expect port {NATIVE_PORTS[name]}"


def test_airflow_variables_are_native_airflow_settings() -> None:
    # Compose's Airflow reads the same AIRFLOW_* variables (not Airflow's own AIRFLOW__*,
    # AIRFLOW_CONN_*, AIRFLOW_VAR_*) as native mode's AirflowSettings.
    names = {name for name, _, _ in interpolations(BASE.read_text()) if name.startswith("AIRFLOW_")}
    assert names, "compose's Airflow takes its settings from .env"
    unknown = {
        name
        for name in names
        if name.removeprefix("AIRFLOW_").lower() not in AirflowSettings.model_fields
    }
    assert not unknown, f"not AirflowSettings fields: {sorted(unknown)}"
