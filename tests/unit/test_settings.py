from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    RuntimeSettings,
    S3Settings,
    project_root,
)


def test_settings_placeholder_secret_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAPLATFORM_ENV", "production")
    monkeypatch.setenv("S3_ACCESS_KEY", "minioadmin")
    monkeypatch.setenv("S3_SECRET_KEY", "a-real-secret-value")
    with pytest.raises(ValidationError, match="S3_ACCESS_KEY holds a placeholder secret"):
        S3Settings()


def test_settings_placeholder_secret_allowed_in_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    monkeypatch.setenv("POSTGRES_PASSWORD", "password")
    assert PostgresSettings().password.get_secret_value() == "password"


def test_settings_conninfo_and_lake_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "pw")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    assert "port=6543" in PostgresSettings().conninfo()
    s3 = S3Settings(bucket="lakehouse")
    assert (
        s3.lake_uri("bronze/finance/transactions") == "s3://lakehouse/bronze/finance/transactions"
    )
    assert s3.lake_uri("/silver/x/", scheme="s3a") == "s3a://lakehouse/silver/x"


@pytest.mark.parametrize("password", ["p w", "it's", "a\\b", "='x'"])
def test_settings_conninfo_quotes_the_password(password: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    parsed = conninfo_to_dict(PostgresSettings(password=password, _env_file=None).conninfo())
    assert parsed["password"] == password
    assert parsed["user"] == "dataplatform"


def test_settings_environment_defaults_to_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = project_root()
    monkeypatch.delenv("DATAPLATFORM_ENV", raising=False)
    monkeypatch.setenv("DATAPLATFORM_HOME", str(tmp_path))  # no .env there
    assert RuntimeSettings(_env_file=None).env == "production"
    with pytest.raises(ValidationError, match="placeholder secret"):
        S3Settings(access_key="minioadmin", secret_key="x" * 20, _env_file=None)
    example = (repo / ".env.example").read_text(encoding="utf-8")
    assert "\nDATAPLATFORM_ENV=production\n" in example
    compose = (repo / "docker-compose.yml").read_text(encoding="utf-8")
    assert "${DATAPLATFORM_ENV:-production}" in compose


@pytest.mark.parametrize(
    ("brokers", "replication", "configured", "expected"),
    [(1, 1, None, 1), (3, 3, None, 2), (3, 1, None, 1), (5, 3, 3, 3)],
)
def test_kafka_min_insync_replicas_follows_the_cluster(
    brokers: int, replication: int, configured: int | None, expected: int
) -> None:
    kafka = KafkaSettings(
        replication_factor=replication, min_insync_replicas=configured, _env_file=None
    )
    assert kafka.topic_min_insync_replicas(brokers) == expected


def test_kafka_min_insync_replicas_above_replication_is_refused() -> None:
    kafka = KafkaSettings(replication_factor=2, min_insync_replicas=3, _env_file=None)
    with pytest.raises(ValueError, match="exceeds KAFKA_REPLICATION_FACTOR"):
        kafka.topic_min_insync_replicas(3)
