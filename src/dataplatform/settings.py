"""Typed settings: env vars (listed in `.env.example`) -> pydantic-settings objects -> code.

One class per deployable (`IngestorSettings`, `ExporterSettings`, `SparkJobSettings`,
`RuntimeSettings`), each composed of the connection settings it needs. Nothing here is built at
import time: call the cached `get_*_settings()` functions.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=env_file(),
        env_file_encoding="utf-8",
        extra="ignore",
    )


def _environment() -> str:
    return os.environ.get("DATAPLATFORM_ENV") or _dotenv_value("DATAPLATFORM_ENV") or "development"


def _dotenv_value(name: str) -> str | None:
    path = env_file()
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


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

    model_config = _config("POSTGRES_")

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "dataplatform"
    password: SecretStr = SecretStr("")
    db: str = "dataplatform"
    connect_timeout_s: int = 5

    def conninfo(self, *, dbname: str | None = None) -> str:
        """A libpq connection string for psycopg."""
        return (
            f"host={self.host} port={self.port} dbname={dbname or self.db} user={self.user} "
            f"password={self.password.get_secret_value()} connect_timeout={self.connect_timeout_s}"
        )

    def jdbc_url(self) -> str:
        """A JDBC URL for Spark (credentials passed separately)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.db}"


class KafkaSettings(BaseSettings):
    """Kafka: bootstrap servers and topic layout."""

    model_config = _config("KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    cluster_id: str = ""


class S3Settings(_SecretsGuard):
    """S3-compatible object storage (SeaweedFS natively, MinIO or SeaweedFS in compose, AWS S3)."""

    model_config = _config("S3_")

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


class RuntimeSettings(BaseSettings):
    """The native runtime (`dataplatform up/down/status`): where data, logs and jars live."""

    model_config = _config("DATAPLATFORM_")

    env: Environment = "development"
    track: Track = "intermediate"
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
        home = self.java_home or (Path(os.environ["JAVA_HOME"]) if "JAVA_HOME" in os.environ else None)
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


class IngestorSettings(BaseSettings):
    """The ingestor service (`fastapi_app`): where it listens and which sink it writes to."""

    model_config = _config("INGESTOR_")

    host: str = "127.0.0.1"
    port: int = 8000
    #: `postgres`: transactional outbox (starter); `kafka`: idempotent producer (intermediate+).
    sink: Literal["postgres", "kafka"] = "kafka"

    @property
    def base_url(self) -> str:
        """The URL clients reach the API at."""
        return f"http://{self.host}:{self.port}"


class ExporterSettings(BaseSettings):
    """The starter track's lake exporter: Postgres outbox -> bronze Delta tables (delta-rs)."""

    model_config = _config("EXPORTER_")

    host: str = "127.0.0.1"
    #: Port of its `/metrics` endpoint, also its health check.
    metrics_port: int = 8010


@cache
def get_ingestor_settings() -> IngestorSettings:
    """Cached `IngestorSettings`."""
    return IngestorSettings()


@cache
def get_exporter_settings() -> ExporterSettings:
    """Cached `ExporterSettings`."""
    return ExporterSettings()
