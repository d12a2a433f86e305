from __future__ import annotations

import pytest
from pydantic import ValidationError

from dataplatform.settings import PostgresSettings, S3Settings


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
