"""Airflow 3 as native services: API server, scheduler, DAG processor and triggerer.

Airflow lives in its own virtualenv (`.venv-airflow`, installed by `airflow_install.sh` from the
project's `constraints-airflow.txt`) because its pins conflict with the ingestor's and Spark's.
The four processes share one `AIRFLOW_HOME` (`data/airflow`) whose `airflow.cfg` is rendered
from `.env` on every `up`; the metadata database is the `airflow` database of the platform's
PostgreSQL. DAG tasks reach the platform's code only through the main virtualenv's executables
(`spark-submit`, `dataplatform`), which are on the processes' `PATH` after Airflow's own.

`services.py` imports `AIRFLOW_SERVICES` from here to register them; both build on the shared
types of `base.py`, so this module never imports `services.py`.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import hmac
import io
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr

from dataplatform.files import write_private
from dataplatform.native.base import Context, PlatformError, Service
from dataplatform.settings import (
    PostgresSettings,
    _SecretsGuard,
    get_runtime_settings,
    project_root,
    settings_config,
)

log = logging.getLogger(__name__)

#: The metadata database; `services.PLATFORM_DATABASES` creates it, owned by the platform role.
METADATA_DATABASE = "airflow"
#: The pool every Spark task runs in: a Spark task is a JVM with `local[N]` cores.
SPARK_POOL = "spark"
#: The Spark connection the DAGs submit with.
SPARK_CONNECTION_ID = "spark_default"
#: Airflow Variable holding the folder of the Spark jobs (`pyspark_jobs/`).
JOBS_DIR_VARIABLE = "pyspark_jobs_dir"
#: Airflow Variable holding the comma-separated Maven-resolved jars `spark-submit --jars` needs.
JARS_VARIABLE = "spark_jars"
#: Health endpoint of the API server; it also reports the other components' heartbeats.
HEALTH_PATH = "/api/v2/monitor/health"


class AirflowSettings(_SecretsGuard):
    """Airflow's native deployment: port, admin, secrets, executor size, Spark and lineage."""

    model_config = settings_config("AIRFLOW_")

    host: str = "127.0.0.1"
    port: int = 8081
    admin_user: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.-]+$")
    admin_password: SecretStr = SecretStr("")
    #: Root secret; the JWT, API session and Fernet keys are derived from it (see `derived_key`).
    secret_key: SecretStr = SecretStr("")
    venv: Path = Field(default_factory=lambda: project_root() / ".venv-airflow")
    parallelism: int = Field(default=4, ge=1)
    spark_pool_slots: int = Field(default=1, ge=1)
    spark_master: str = "local[2]"
    dags_paused_at_creation: bool = False
    #: OpenLineage provider: off, events in the task logs, to the Kafka topic the Spark jobs
    #: send theirs to (`LINEAGE_TOPIC`), or to `openlineage_url`.
    openlineage_transport: Literal["disabled", "console", "kafka", "http"] = "kafka"
    openlineage_url: str = ""
    openlineage_namespace: str = "dataplatform"

    @property
    def base_url(self) -> str:
        """Where the UI and the REST API answer."""
        return f"http://{self.host}:{self.port}"

    @property
    def airflow_bin(self) -> Path:
        """The `airflow` executable of Airflow's own virtualenv."""
        return self.venv / "bin" / "airflow"

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose, derived from `secret_key` with HMAC-SHA256.

        One generated secret in `.env` is enough, and every Airflow process computes the same
        keys: the scheduler signs task tokens that the API server must verify.
        """
        secret = self.secret_key.get_secret_value().encode()
        return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def openlineage_transport_json(
        self, *, kafka_bootstrap_servers: str = "", topic: str = ""
    ) -> str | None:
        """The provider's `[openlineage] transport` JSON, or None when lineage is disabled.

        Args:
            kafka_bootstrap_servers: The brokers of the `kafka` transport.
            topic: Its topic (the Spark jobs' `LINEAGE_TOPIC`).
        """
        if self.openlineage_transport == "disabled":
            return None
        if self.openlineage_transport == "http":
            return json.dumps({"type": "http", "url": self.openlineage_url})
        if self.openlineage_transport == "kafka":
            return json.dumps(
                {
                    "type": "kafka",
                    "topic": topic,
                    "config": {"bootstrap.servers": kafka_bootstrap_servers, "acks": "all"},
                    # A task process may exit right after the event: send it before.
                    "flush": True,
                }
            )
        return json.dumps({"type": "console"})

    def fernet_key(self) -> str:
        """The Fernet key encrypting connection passwords and variables in the metadata DB."""
        return base64.urlsafe_b64encode(self.derived_key("fernet")).decode()


#: The keys derived from `AIRFLOW_SECRET_KEY`, by name (`dataplatform airflow-key <name>`):
#: the values of `airflow.cfg`'s core.fernet_key, api.secret_key and api_auth.jwt_secret.
AIRFLOW_KEYS: dict[str, Callable[[AirflowSettings], str]] = {
    "fernet": lambda settings: settings.fernet_key(),
    "api-session": lambda settings: settings.derived_key("api-session").hex(),
    "jwt": lambda settings: settings.derived_key("jwt").hex(),
}


@cache
def get_airflow_settings() -> AirflowSettings:
    """Cached `AirflowSettings`."""
    return AirflowSettings()


# --------------------------------------------------------------------------- paths and config


def airflow_home(data_dir: Path) -> Path:
    """`data/airflow`: config, logs and the passwords file."""
    return data_dir / "airflow"


def dags_folder() -> Path:
    """The DAG files, straight from the checkout."""
    return project_root() / "airflow_dags"


def jobs_folder() -> Path:
    """The Spark jobs the DAGs submit."""
    return project_root() / "pyspark_jobs"


def spark_jars() -> str:
    """The Delta, Kafka-source, s3a and JDBC jars for `spark-submit --jars`, comma-separated.

    The jobs refuse to start without them: the JVM starts before Python, so jars added from
    the session builder would miss the driver's class path.
    """
    folder = get_runtime_settings().jars_dir / "spark"
    return ",".join(str(jar) for jar in sorted(folder.glob("*.jar")))


def metadata_url(postgres: PostgresSettings) -> str:
    """SQLAlchemy URL of the metadata database (psycopg2: what Airflow's Postgres support uses)."""
    user = quote(postgres.user, safe="")
    password = quote(postgres.password.get_secret_value(), safe="")
    return (
        f"postgresql+psycopg2://{user}:{password}@{postgres.host}:{postgres.port}/"
        f"{METADATA_DATABASE}"
    )


def render_config(
    home: Path, settings: AirflowSettings, postgres: PostgresSettings
) -> dict[str, dict[str, str]]:
    """The contents of `airflow.cfg`, section by section.

    Values live in the file rather than in `AIRFLOW__*` variables because supervisord's
    `environment=` cannot carry JSON (the OpenLineage transport) and would expose the secrets in
    its own config; the file is private (0600). `AIRFLOW__*` variables still override it.
    """
    from dataplatform.lineage import get_lineage_settings
    from dataplatform.settings import get_kafka_settings, get_statsd_exporter_settings

    statsd = get_statsd_exporter_settings()
    openlineage = settings.openlineage_transport_json(
        kafka_bootstrap_servers=get_kafka_settings().bootstrap_servers,
        topic=get_lineage_settings().topic,
    )
    return {
        "core": {
            "dags_folder": str(dags_folder()),
            "executor": "LocalExecutor",
            "parallelism": str(settings.parallelism),
            "load_examples": "False",
            "dags_are_paused_at_creation": str(settings.dags_paused_at_creation),
            "fernet_key": AIRFLOW_KEYS["fernet"](settings),
            "simple_auth_manager_users": f"{settings.admin_user}:admin",
            "simple_auth_manager_passwords_file": str(home / "passwords.json"),
            # Tasks report back to the API server; the default URL assumes port 8080.
            "execution_api_server_url": f"{settings.base_url}/execution/",
        },
        "database": {
            "sql_alchemy_conn": metadata_url(postgres),
            # Four processes plus task processes share Postgres with the platform: stay lean.
            "sql_alchemy_pool_size": "3",
            "sql_alchemy_max_overflow": "5",
        },
        "api": {
            "host": settings.host,
            "port": str(settings.port),
            "workers": "1",
            "base_url": settings.base_url,
            "secret_key": AIRFLOW_KEYS["api-session"](settings),
            "expose_config": "False",
        },
        "api_auth": {"jwt_secret": AIRFLOW_KEYS["jwt"](settings)},
        "dag_processor": {
            # New DAG files appear within ~30 s; each file is re-parsed once a minute, which
            # keeps the processor's CPU use low on a small shared machine.
            "refresh_interval": "30",
            "min_file_process_interval": "60",
            "parsing_processes": "1",
        },
        "logging": {"base_log_folder": str(home / "logs")},
        # StatsD to the track's StatsD exporter, which Prometheus scrapes
        # (observability/statsd-mapping.yml names the series).
        "metrics": {
            "statsd_on": "True",
            "statsd_host": statsd.host,
            "statsd_port": str(statsd.statsd_port),
            "statsd_prefix": "airflow",
            # Tags (dag_id, task_id, state) as InfluxDB-style tags: labels in the exporter.
            "statsd_influxdb_enabled": "True",
        },
        "openlineage": {
            "disabled": str(not openlineage),
            "namespace": settings.openlineage_namespace,
            **({"transport": openlineage} if openlineage else {}),
        },
    }


def write_config(home: Path, settings: AirflowSettings, postgres: PostgresSettings) -> Path:
    """Write `airflow.cfg` and the simple auth manager's passwords file; return the config path.

    Idempotent: rewritten from `.env` each time, so `.env` stays the one place to change them.
    """
    if not settings.admin_password.get_secret_value() or not settings.secret_key.get_secret_value():
        raise PlatformError(
            "AIRFLOW_ADMIN_PASSWORD or AIRFLOW_SECRET_KEY is empty: run `dataplatform env init`"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    parser = configparser.RawConfigParser()
    for section, values in render_config(home, settings, postgres).items():
        parser[section] = values
    config = home / "airflow.cfg"
    text = io.StringIO()
    parser.write(text)
    write_private(config, text.getvalue())
    passwords = {settings.admin_user: settings.admin_password.get_secret_value()}
    write_private(home / "passwords.json", json.dumps(passwords) + "\n")
    return config


def process_environment(home: Path, settings: AirflowSettings) -> dict[str, str]:
    """Environment of every Airflow process (and of the tasks it runs).

    Airflow's virtualenv comes first on `PATH`; the main one follows so tasks find
    `spark-submit` and `dataplatform` there (Airflow's venv has neither). `spark-submit` locates
    Spark with `PYSPARK_PYTHON`, which must be the main venv's interpreter for the same reason.
    """
    main_bin = Path(sys.executable).parent
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "PATH": os.pathsep.join(
            [str(settings.venv / "bin"), str(main_bin), os.environ.get("PATH", "/usr/bin:/bin")]
        ),
        "PYSPARK_PYTHON": str(main_bin / "python"),
        "PYSPARK_DRIVER_PYTHON": str(main_bin / "python"),
        "DATAPLATFORM_HOME": str(project_root()),
        # Spark's driver would otherwise bind its ports to the host's external address.
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


# --------------------------------------------------------------------------- REST API


class AirflowApi:
    """A small client of Airflow's REST API v2 with the admin's bearer token."""

    def __init__(self, settings: AirflowSettings, *, timeout_s: float = 30.0) -> None:
        """Log in as the admin (`POST /auth/token`).

        Args:
            settings: Where Airflow answers and the admin's credentials.
            timeout_s: Timeout of each request.
        """
        self._client = httpx.Client(base_url=settings.base_url, timeout=timeout_s)
        response = self._client.post(
            "/auth/token",
            json={
                "username": settings.admin_user,
                "password": settings.admin_password.get_secret_value(),
            },
        )
        response.raise_for_status()
        self._client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request under `/api/v2`; the response is returned whatever its status."""
        return self._client.request(method, f"/api/v2{path}", **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request under `/api/v2`; raises on an error status, returns the JSON body."""
        response = self.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def upsert(self, collection: str, key: str, body: dict[str, Any]) -> None:
        """Replace the entry `key` of a collection (connections, variables, pools) or create it."""
        response = self.request("PATCH", f"/{collection}/{quote(key, safe='')}", json=body)
        if response.status_code == 404:
            response = self.request("POST", f"/{collection}", json=body)
        response.raise_for_status()

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()


def health(settings: AirflowSettings) -> dict[str, Any] | None:
    """The API server's health report, or None when it does not answer."""
    try:
        response = httpx.get(f"{settings.base_url}{HEALTH_PATH}", timeout=3)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def component_healthy(settings: AirflowSettings, component: str) -> bool:
    """True when the health report says `component` (e.g. `scheduler`) is healthy.

    The scheduler, DAG processor and triggerer write heartbeats to the metadata DB and the API
    server reports them; reading that report is much cheaper than `airflow jobs check`, which
    starts a Python interpreter that imports all of Airflow.
    """
    report = health(settings) or {}
    return report.get(component, {}).get("status") == "healthy"


def apply_platform_objects(settings: AirflowSettings) -> None:
    """Create or update what the DAGs rely on: Spark connection and pool, jobs folder and jars.

    They are managed from `.env` (rewritten on every `up`), so a change made in the UI lasts
    until the next `up`; change `.env` to make it stick.
    """
    api = AirflowApi(settings)
    try:
        api.upsert(
            "connections",
            SPARK_CONNECTION_ID,
            {
                "connection_id": SPARK_CONNECTION_ID,
                "conn_type": "spark",
                "host": settings.spark_master,
                "description": "Spark master for the platform's jobs (AIRFLOW_SPARK_MASTER)",
                "extra": json.dumps({"deploy-mode": "client"}),
            },
        )
        api.upsert(
            "pools",
            SPARK_POOL,
            {
                "name": SPARK_POOL,
                "slots": settings.spark_pool_slots,
                "description": "Spark tasks running at once (AIRFLOW_SPARK_POOL_SLOTS)",
                "include_deferred": False,
            },
        )
        api.upsert(
            "variables",
            JOBS_DIR_VARIABLE,
            {
                "key": JOBS_DIR_VARIABLE,
                "value": str(jobs_folder()),
                "description": "Folder of the Spark jobs the DAGs submit",
            },
        )
        api.upsert(
            "variables",
            JARS_VARIABLE,
            {
                "key": JARS_VARIABLE,
                "value": spark_jars(),
                "description": "Jars passed to spark-submit --jars (resolved by Maven)",
            },
        )
    finally:
        api.close()
    log.info(
        "airflow objects applied",
        extra={
            "connection": SPARK_CONNECTION_ID,
            "pool": SPARK_POOL,
            "variable": JOBS_DIR_VARIABLE,
        },
    )


# --------------------------------------------------------------------------- services


def _home(ctx: Context) -> Path:
    return airflow_home(ctx.runtime.data_dir)


def _prepare(ctx: Context) -> None:
    write_config(_home(ctx), get_airflow_settings(), ctx.postgres)


def _apiserver_command(ctx: Context) -> list[str]:
    settings = get_airflow_settings()
    airflow = shlex.quote(str(settings.airflow_bin))
    # The schema is migrated (idempotently, under Airflow's own lock) right before the API
    # server starts: `prepare` runs before PostgreSQL is up, and every other Airflow process
    # starts only once this one is healthy, i.e. after the migration.
    script = (
        f"{airflow} db migrate && exec {airflow} api-server "
        f"--host {shlex.quote(settings.host)} --port {settings.port} --workers 1"
    )
    return ["/bin/sh", "-c", script]


def _environment(ctx: Context) -> dict[str, str]:
    return process_environment(_home(ctx), get_airflow_settings())


def _preflight(ctx: Context) -> str | None:
    settings = get_airflow_settings()
    if not settings.airflow_bin.exists():
        return (
            f"Airflow is not installed ({settings.airflow_bin} is missing): run "
            "`bash src/dataplatform/native/airflow_install.sh` (./quick_start.sh does it)"
        )
    if not settings.admin_password.get_secret_value() or not settings.secret_key.get_secret_value():
        return "AIRFLOW_ADMIN_PASSWORD or AIRFLOW_SECRET_KEY is empty: run `dataplatform env init`"
    return None


def _build_services() -> tuple[Service, ...]:
    settings = get_airflow_settings

    def component(name: str, description: str, args: list[str], health_key: str) -> Service:
        return Service(
            name=name,
            description=description,
            ports=lambda _ctx: (),
            command=lambda _ctx: [str(settings().airflow_bin), *args],
            probe=lambda _ctx: component_healthy(settings(), health_key),
            depends_on=("postgres", "airflow-apiserver"),
            environment=_environment,
            preflight=(_preflight,),
        )

    return (
        Service(
            name="airflow-apiserver",
            description="Airflow 3 API server and UI",
            ports=lambda _ctx: (settings().port,),
            command=_apiserver_command,
            probe=lambda _ctx: component_healthy(settings(), "metadatabase"),
            depends_on=("postgres",),
            prepare=_prepare,
            initialise=lambda _ctx: apply_platform_objects(settings()),
            environment=_environment,
            preflight=(_preflight,),
        ),
        # Log servers are skipped: every process shares data/airflow/logs, which the API server
        # reads directly, and the log server would listen on all interfaces.
        component(
            "airflow-scheduler",
            "Airflow scheduler (LocalExecutor)",
            ["scheduler", "--skip-serve-logs"],
            "scheduler",
        ),
        component(
            "airflow-dag-processor", "Airflow DAG processor", ["dag-processor"], "dag_processor"
        ),
        component(
            "airflow-triggerer",
            "Airflow triggerer",
            ["triggerer", "--skip-serve-logs"],
            "triggerer",
        ),
    )


#: Airflow's four processes, in start order; `services.py` registers them for the advanced track.
AIRFLOW_SERVICES: tuple[Service, ...] = _build_services()
