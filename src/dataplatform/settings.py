"""Typed settings: env vars (listed in `.env.example`) -> pydantic-settings objects -> code.

One class per deployable (`IngestorSettings`, `ExporterSettings`, `RuntimeSettings`; the Spark
jobs' `SparkSettings` lives in `dataplatform/spark_settings.py`), each composed of the connection
settings it needs. Nothing here is built at import time: call the cached `get_*_settings()`
functions.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dataplatform import envfile
from dataplatform.ingest_ids import IngestIds

Track = Literal["starter", "intermediate", "advanced"]
TRACKS: tuple[Track, ...] = ("starter", "intermediate", "advanced")
Environment = Literal["development", "production"]

#: Values that must never be used outside development (copied from docs or `.env.example`).
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "password", "minioadmin", "admin"})


def project_root() -> Path:
    """The repository root: `DATAPLATFORM_HOME`, else the checkout this package lives in."""
    home = os.environ.get("DATAPLATFORM_HOME")
    if home:
        return Path(home).resolve()
    return Path(__file__).resolve().parents[2]


def env_file() -> Path:
    """The generated, git-ignored `.env` at the project root."""
    return project_root() / ".env"


def settings_config(prefix: str) -> SettingsConfigDict:
    """The config every settings class shares: its env prefix, read from the env and `.env`."""
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=env_file(),
        env_file_encoding="utf-8",
        extra="ignore",
    )


def _environment() -> str:
    return os.environ.get("DATAPLATFORM_ENV") or _dotenv_value("DATAPLATFORM_ENV") or "production"


def _dotenv_value(name: str) -> str | None:
    path = env_file()
    if not path.is_file():
        return None
    return envfile.parse(path.read_text(encoding="utf-8")).get(name)


class _SecretsGuard(BaseSettings):
    """Refuses placeholder secrets outside development."""

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if _environment() == "development":
            return self
        for name, value in self:
            if isinstance(value, SecretStr) and value.get_secret_value() in PLACEHOLDER_SECRETS:
                prefix = self.model_config.get("env_prefix", "")
                raise ValueError(
                    f"{prefix}{name.upper()} holds a placeholder secret; "
                    "generate real ones with `dataplatform env init`"
                )
        return self


class PostgresSettings(_SecretsGuard):
    """PostgreSQL: the outbox, API keys, receipts, reference data and Airflow's metadata."""

    model_config = settings_config("POSTGRES_")

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "dataplatform"
    password: SecretStr = SecretStr("")
    db: str = "dataplatform"
    connect_timeout_s: int = 5
    #: How long a Delta writer waits for a table's commit lock (`dataplatform.lakelock`)
    #: before failing: longer than the longest delta-rs write that holds it.
    commit_lock_timeout_s: float = Field(default=60.0, gt=0)

    def conninfo(self, *, dbname: str | None = None) -> str:
        """A libpq connection string for psycopg, every value quoted as libpq needs it."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname or self.db,
            user=self.user,
            password=self.password.get_secret_value(),
            connect_timeout=self.connect_timeout_s,
        )

    def jdbc_url(self) -> str:
        """A JDBC URL for Spark (credentials passed separately)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.db}"


#: The Postgres schema of the ingest tables: one variable, `INGEST_DB_SCHEMA`, for every process
#: that reads or writes them (ingestor, lake exporter, landing's progress reports).
IngestDbSchema = Annotated[
    str, Field(validation_alias="INGEST_DB_SCHEMA", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
]


def _empty_is_none(value: object) -> object:
    """`NAME=` in `.env` means "unset" for optional numbers."""
    return None if value == "" else value


#: The Kafka topic every OpenLineage event goes to (the platform creates it with its topics).
LINEAGE_TOPIC = "openlineage.events.v1"


class LineageSettings(BaseSettings):
    """Where the jobs' OpenLineage events go: env vars `LINEAGE_*` (in `.env.example`)."""

    model_config = settings_config("LINEAGE_")

    #: `kafka`: to `topic` (the default); `console`: into the job's log; `disabled`: nowhere
    #: (the Delta copy is off too).
    transport: Literal["kafka", "console", "disabled"] = "kafka"
    #: The Kafka topic of the events.
    topic: str = LINEAGE_TOPIC
    #: The jobs' namespace, shared with Airflow's OpenLineage provider.
    namespace: str = "dataplatform"
    #: Also append every event to the lake's `_lineage/openlineage_events` Delta table (what
    #: `dataplatform lineage` reads).
    delta: bool = True
    #: Also POST every event to this OpenLineage HTTP API (Marquez, in compose); empty: no.
    url: str = ""


@cache
def get_lineage_settings() -> LineageSettings:
    """Cached `LineageSettings`."""
    return LineageSettings()


class KafkaSettings(BaseSettings):
    """Kafka: bootstrap servers and topic layout."""

    model_config = settings_config("KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    #: Where the native broker's Prometheus JMX exporter agent serves `/metrics` (on the
    #: bootstrap host); 0 starts the broker without the agent.
    jmx_exporter_port: int = Field(default=9094, ge=0, le=65535)
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: `min.insync.replicas` of the platform's topics; unset or empty: min(2, brokers, replication).
    min_insync_replicas: Annotated[int | None, BeforeValidator(_empty_is_none)] = Field(
        default=None, ge=1
    )
    cluster_id: str = ""
    #: `PLAINTEXT` natively; `SASL_SSL` for Amazon MSK's IAM listener (port 9098).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    #: With `SASL_SSL`: how clients prove their IAM identity to MSK. `OAUTHBEARER`: a SigV4-signed
    #: token (MSK's signer in Python, its `IAMOAuthBearerLoginCallbackHandler` on the JVM);
    #: `AWS_MSK_IAM`: MSK's own SASL mechanism on the JVM. librdkafka has no `AWS_MSK_IAM`, so the
    #: Python clients use `OAUTHBEARER` with the same identity either way; MSK accepts both.
    sasl_mechanism: Literal["", "OAUTHBEARER", "AWS_MSK_IAM"] = ""
    #: The region MSK's IAM tokens are signed for (the cluster's region).
    aws_region: str = ""

    @model_validator(mode="after")
    def _iam_needs_sasl_ssl(self) -> Self:
        if self.sasl_mechanism and self.security_protocol != "SASL_SSL":
            raise ValueError(
                f"KAFKA_SASL_MECHANISM={self.sasl_mechanism} needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        if self.security_protocol == "SASL_SSL" and not self.sasl_mechanism:
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM "
                "(OAUTHBEARER or AWS_MSK_IAM: MSK's IAM authentication)"
            )
        if self.sasl_mechanism and not self.aws_region:
            raise ValueError(
                "KAFKA_AWS_REGION is required with MSK IAM authentication (KAFKA_SASL_MECHANISM)"
            )
        return self

    @property
    def msk_iam(self) -> bool:
        """Whether clients authenticate to Amazon MSK with IAM (SASL over TLS)."""
        return bool(self.sasl_mechanism)

    def topic_min_insync_replicas(self, brokers: int) -> int:
        """`min.insync.replicas` for a topic created on a cluster of `brokers` brokers.

        Raises:
            ValueError: The configured value exceeds the replication factor: every
                `acks=all` write would fail.
        """
        if self.min_insync_replicas is None:
            return max(1, min(2, brokers, self.replication_factor))
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"KAFKA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"KAFKA_REPLICATION_FACTOR={self.replication_factor}: no write could succeed"
            )
        return self.min_insync_replicas


class S3Settings(_SecretsGuard):
    """S3-compatible object storage (SeaweedFS natively, MinIO or SeaweedFS in compose, AWS S3)."""

    model_config = settings_config("S3_")

    endpoint_url: str = "http://127.0.0.1:9000"
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    region: str = "us-east-1"
    bucket: str = "lakehouse"

    def lake_uri(self, relative: str, *, scheme: Literal["s3", "s3a"] = "s3") -> str:
        """`s3://lakehouse/<relative>` (delta-rs, boto3) or `s3a://...` (Spark)."""
        return f"{scheme}://{self.bucket}/{relative.strip('/')}"

    def delta_storage_options(self) -> dict[str, str]:
        """Storage options for delta-rs (`deltalake`) against this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.secret_key.get_secret_value(),
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true" if self.endpoint_url.startswith("http://") else "false",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "false",
            "conditional_put": "etag",
        }


class MongoSettings(_SecretsGuard):
    """The document store: MongoDB in compose, FerretDB v1 natively (advanced track)."""

    model_config = settings_config("MONGODB_")

    host: str = "127.0.0.1"
    port: int = 27017
    #: Natively also a PostgreSQL role: FerretDB hands each client's credentials to PostgreSQL.
    user: str = "documents"
    password: SecretStr = SecretStr("")
    #: The MongoDB database holding the `documents` collection and the ingest sequence.
    db: str = "dataplatform"
    #: FerretDB v1 speaks SASL PLAIN (over loopback natively); MongoDB's root user SCRAM-SHA-256.
    auth_mechanism: Literal["PLAIN", "SCRAM-SHA-256"] = "PLAIN"
    #: Where the user is defined: `$external` for PLAIN, `admin` for MongoDB's root user.
    auth_source: str = "$external"
    #: Longest wait for one operation (server selection, a write) before giving up.
    timeout_s: float = Field(default=5.0, gt=0)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of `pymongo.MongoClient` for this server and user."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password.get_secret_value(),
            "authMechanism": self.auth_mechanism,
            "authSource": self.auth_source,
            "serverSelectionTimeoutMS": int(self.timeout_s * 1000),
            "timeoutMS": int(self.timeout_s * 1000),
            # The platform's own decisions (ids, sequence numbers) make writes idempotent;
            # a driver-level retry of a write whose answer was lost could duplicate a version.
            "retryWrites": False,
            "tz_aware": True,
        }


@cache
def get_mongo_settings() -> MongoSettings:
    """Cached `MongoSettings`."""
    return MongoSettings()


class DocumentLandingSettings(BaseSettings):
    """The document landing job: document store -> bronze/silver Delta (advanced track)."""

    model_config = settings_config("DOCUMENTS_")

    #: Most document versions landed in one Delta commit.
    batch_size: int = Field(default=1000, ge=1)
    #: Seconds between polls of the ingest sequence when nothing new is there.
    poll_interval_s: float = Field(default=1.0, gt=0)
    #: Seconds a gap in the ingest sequence is waited for before it is passed: a number taken
    #: by a request that failed before its insert is never filled. Longer than any insert takes
    #: (MONGODB_TIMEOUT_S bounds them).
    gap_grace_s: float = Field(default=30.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@cache
def get_document_landing_settings() -> DocumentLandingSettings:
    """Cached `DocumentLandingSettings`."""
    return DocumentLandingSettings()


class RuntimeSettings(BaseSettings):
    """The native runtime (`dataplatform up/down/status`): where data, logs and jars live."""

    model_config = settings_config("DATAPLATFORM_")

    env: Environment = "production"
    track: Track = "advanced"
    data_dir: Path = Field(default_factory=lambda: project_root() / "data")
    jars_dir: Path = Field(default_factory=lambda: project_root() / ".jars")
    java_home: Path | None = None
    postgres_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    start_timeout_s: float = 120.0

    @property
    def logs_dir(self) -> Path:
        """Every native service logs to `data/logs/<service>.log`."""
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """Rendered configs, sockets and PID files of the native runtime."""
        return self.data_dir / "run"

    def java_bin(self) -> Path:
        """The `java` executable: `DATAPLATFORM_JAVA_HOME`, `JAVA_HOME`, else the one on PATH."""
        home = self.java_home or (
            Path(os.environ["JAVA_HOME"]) if "JAVA_HOME" in os.environ else None
        )
        return home / "bin" / "java" if home else Path("java")


@cache
def get_postgres_settings() -> PostgresSettings:
    """Cached `PostgresSettings`."""
    return PostgresSettings()


@cache
def get_kafka_settings() -> KafkaSettings:
    """Cached `KafkaSettings`."""
    return KafkaSettings()


@cache
def get_s3_settings() -> S3Settings:
    """Cached `S3Settings`."""
    return S3Settings()


@cache
def get_runtime_settings() -> RuntimeSettings:
    """Cached `RuntimeSettings`."""
    return RuntimeSettings()


class ReceiptSettings(_SecretsGuard):
    """The secret ingest ids are signed with (`dataplatform.ingest_ids`): the ingestor signs
    them, landing and the lake exporter compute the same ids for bronze, so all three read it."""

    model_config = settings_config("RECEIPT_")

    secret: SecretStr = SecretStr("")
    #: Where landing records its progress for the receipts (the ingest schema).
    db_schema: IngestDbSchema = "ingest"

    def key(self) -> bytes:
        """The secret's bytes.

        Raises:
            ValueError: No secret is set (only development allows an empty one).
        """
        value = self.secret.get_secret_value()
        if not value:
            raise ValueError("RECEIPT_SECRET is not set; generate it with `dataplatform env init`")
        return value.encode()

    def ids(self) -> IngestIds:
        """The signer of ingest ids (see `key` for its error)."""
        return IngestIds(self.key())


class IngestorSettings(BaseSettings):
    """The ingestor service (`fastapi_app`): where it listens, its sink, its limits."""

    model_config = settings_config("INGESTOR_")

    host: str = "127.0.0.1"
    port: int = 8000
    #: Worker processes serving the port. The limits counted in memory (every key's rate limit
    #: and burst, records in flight, requests served at once, open connections) are divided
    #: among them, so together the workers never exceed them (docs/API.md, "Several workers").
    workers: int = Field(default=1, ge=1)
    #: `postgres`: transactional outbox (starter); `kafka`: idempotent producer (intermediate+).
    #: Unset, it follows DATAPLATFORM_TRACK, so one variable picks the track in both runtimes.
    sink: Literal["postgres", "kafka"] = "kafka"
    #: Postgres schema of the ingest tables (outbox, receipts, idempotency keys, API keys);
    #: shared with the lake exporter, hence one variable without the service prefix.
    db_schema: IngestDbSchema = "ingest"
    #: API keys are required unless this is false, which only development mode allows.
    auth_enabled: bool = True
    #: Seconds a verified API key stays cached in the process (how long a revocation takes).
    api_key_cache_ttl_s: float = Field(default=30.0, ge=0)
    #: Per API key token bucket, requests per second (0 disables) and burst size.
    rate_limit_per_s: float = Field(default=5000.0, ge=0)
    rate_limit_burst: int = Field(default=10000, ge=1)
    #: Bytes of one record (the whole body of the single-record endpoints).
    max_record_bytes: int = Field(default=64 * 1024, ge=256)
    #: Bytes of one document (the whole body of the document endpoint).
    max_document_bytes: int = Field(default=256 * 1024, ge=1024)
    #: Bytes of one batch request body and records in it.
    max_batch_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_batch_records: int = Field(default=1000, ge=1)
    #: Records admitted but not yet acknowledged by the sink; beyond it requests get 503 at once,
    #: so overload sheds load instead of growing latency without bound.
    max_inflight_records: int = Field(default=10000, ge=1)
    #: Requests served at once; beyond it a request gets 503 + Retry-After at once, before any
    #: work, so a flood of single-record requests cannot queue without bound.
    max_concurrency: int = Field(default=256, ge=1)
    #: Open connections, idle keep-alive ones included (uvicorn's `limit_concurrency`, against
    #: running out of sockets): while that many are open, uvicorn answers every request 503.
    #: Keep it well above `max_concurrency`, which decides who is served.
    max_connections: int = Field(default=4096, ge=1)
    #: Seconds an idle keep-alive connection stays open (uvicorn's `timeout_keep_alive`). Above
    #: the idle timeout of whatever reuses connections to it (AWS ALB 60 s, clients' pools), so
    #: the other side closes first: a server closing at the moment a request is reused on the
    #: connection resets that request. Idle connections count against `max_connections`.
    keepalive_s: int = Field(default=75, ge=1)
    #: Longest wait for the sink (Kafka ack, Postgres commit) before answering 503.
    sink_timeout_s: float = Field(default=5.0, gt=0)
    #: `Retry-After` seconds sent with 503 answers.
    retry_after_s: int = Field(default=1, ge=1)
    #: Kafka producer: linger (latency vs. batching) and the bound of librdkafka's queue.
    kafka_linger_ms: float = Field(default=1.0, ge=0)
    kafka_queue_max_messages: int = Field(default=100000, ge=1)
    #: Postgres connection pool and the most rows one grouped statement carries.
    db_pool_max: int = Field(default=4, ge=1)
    db_batch_max_rows: int = Field(default=2000, ge=1)
    #: Hours an `Idempotency-Key` is remembered.
    idempotency_ttl_h: float = Field(default=24.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: One JSON log line per ingest request (ingest ids, trace id, outcome).
    log_requests: bool = True
    #: A key for the platform's own clients (`dataplatform generate --send`, quick_start.sh);
    #: the service itself never reads it.
    api_key: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _auth_off_only_in_development(self) -> Self:
        if not self.auth_enabled and _environment() != "development":
            raise ValueError(
                "INGESTOR_AUTH_ENABLED=false is only allowed with DATAPLATFORM_ENV=development"
            )
        return self

    def worker_share(self) -> IngestorSettings:
        """What one of `workers` processes enforces: the in-memory limits divided among them.

        A key's own rate limit (`dataplatform apikey create --rate-limit`) is divided by the
        rate limiter, which gets `workers` from these settings.
        """
        if self.workers == 1:
            return self
        n = self.workers
        return self.model_copy(
            update={
                "rate_limit_per_s": self.rate_limit_per_s / n,
                "rate_limit_burst": max(1, self.rate_limit_burst // n),
                "max_inflight_records": self.max_inflight_records // n,
                "max_concurrency": max(1, self.max_concurrency // n),
                "max_connections": max(1, self.max_connections // n),
            }
        )

    @property
    def environment(self) -> str:
        """`DATAPLATFORM_ENV`: development or production."""
        return _environment()

    @model_validator(mode="before")
    @classmethod
    def _sink_from_track(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("sink"):
            track = get_runtime_settings().track
            data = {**data, "sink": "postgres" if track == "starter" else "kafka"}
        return data

    @property
    def base_url(self) -> str:
        """The URL clients reach the API at."""
        return f"http://{self.host}:{self.port}"


class ExporterSettings(BaseSettings):
    """The starter track's lake exporter: Postgres outbox -> bronze Delta tables (delta-rs)."""

    model_config = settings_config("EXPORTER_")

    host: str = "127.0.0.1"
    #: Port of its `/metrics` endpoint, also its health check.
    metrics_port: int = 8010
    #: Same schema as the ingestor's (`INGEST_DB_SCHEMA`).
    db_schema: IngestDbSchema = "ingest"
    #: Most outbox rows written to Delta in one commit.
    batch_size: int = Field(default=10000, ge=1)
    #: Seconds between polls of the outbox when it is empty.
    poll_interval_s: float = Field(default=1.0, gt=0)
    #: Seconds between two reads of every lake table's Delta log for the `delta_table_*`
    #: metrics on its `/metrics` (freshness, files, maintenance debt); 0 reads none.
    lake_metrics_interval_s: float = Field(default=30.0, ge=0)
    #: Data files below this size count as small in `delta_table_small_files`.
    small_file_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@cache
def get_ingestor_settings() -> IngestorSettings:
    """Cached `IngestorSettings`."""
    return IngestorSettings()


@cache
def get_exporter_settings() -> ExporterSettings:
    """Cached `ExporterSettings`."""
    return ExporterSettings()


class PrometheusSettings(BaseSettings):
    """Prometheus (advanced track): where it listens and how long it keeps samples."""

    model_config = settings_config("PROMETHEUS_")

    host: str = "127.0.0.1"
    port: int = 9090
    #: How often every target is scraped and every rule evaluated.
    scrape_interval: str = "15s"
    retention: str = "15d"

    @property
    def base_url(self) -> str:
        """The URL of its HTTP API (`/api/v1/query`, `/-/ready`)."""
        return f"http://{self.host}:{self.port}"


@cache
def get_prometheus_settings() -> PrometheusSettings:
    """Cached `PrometheusSettings`."""
    return PrometheusSettings()


class StatsdExporterSettings(BaseSettings):
    """The Prometheus StatsD exporter (advanced track): Airflow's StatsD metrics for Prometheus."""

    model_config = settings_config("STATSD_EXPORTER_")

    host: str = "127.0.0.1"
    #: Its `/metrics` (Prometheus scrapes it).
    port: int = 9102
    #: The UDP port Airflow sends its StatsD metrics to.
    statsd_port: int = 9125


@cache
def get_statsd_exporter_settings() -> StatsdExporterSettings:
    """Cached `StatsdExporterSettings`."""
    return StatsdExporterSettings()


class CollectorSettings(BaseSettings):
    """The OpenTelemetry Collector (advanced track): its OTLP listeners."""

    model_config = settings_config("OTELCOL_")

    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318

    @property
    def otlp_http_url(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT names for an OTLP/HTTP exporter."""
        return f"http://{self.host}:{self.http_port}"


@cache
def get_collector_settings() -> CollectorSettings:
    """Cached `CollectorSettings`."""
    return CollectorSettings()
