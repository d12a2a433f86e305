from __future__ import annotations

import psycopg

from dataplatform.settings import PostgresSettings
from tests.factories import unique


def test_postgres_round_trip(postgres_settings: PostgresSettings) -> None:
    table = unique("roundtrip").replace("-", "_")
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (id int PRIMARY KEY, amount numeric(18, 6))")
        conn.execute(f"INSERT INTO {table} VALUES (1, 125.50), (2, 0.000001)")
        rows = conn.execute(f"SELECT id, amount::text FROM {table} ORDER BY id").fetchall()
    assert rows == [(1, "125.500000"), (2, "0.000001")]


def test_postgres_platform_databases_exist(postgres_settings: PostgresSettings) -> None:
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert {postgres_settings.db, "airflow"} <= names


def test_postgres_listens_on_loopback_only(postgres_settings: PostgresSettings) -> None:
    with psycopg.connect(postgres_settings.conninfo()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
