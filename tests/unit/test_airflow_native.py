"""The native Airflow services: rendered config, environment and service definitions."""

from __future__ import annotations

import base64
import configparser
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dataplatform.native import airflow
from dataplatform.settings import PostgresSettings


@pytest.fixture
def settings(tmp_path: Path) -> airflow.AirflowSettings:
    return airflow.AirflowSettings(
        port=18081,
        admin_user="ops",
        admin_password="s3cret",
        secret_key="root-secret",
        venv=tmp_path / "venv-airflow",
    )


@pytest.fixture
def postgres() -> PostgresSettings:
    return PostgresSettings(host="127.0.0.1", port=5432, user="dp", password="p@ss:/word")


def test_render_config_points_every_process_at_the_api_port(
    tmp_path: Path, settings: airflow.AirflowSettings, postgres: PostgresSettings
) -> None:
    config = airflow.render_config(tmp_path, settings, postgres)
    assert config["core"]["execution_api_server_url"] == "http://127.0.0.1:18081/execution/"
    assert config["api"]["port"] == "18081"
    assert config["api"]["host"] == "127.0.0.1"
    assert config["api"]["workers"] == "1"
    assert config["core"]["executor"] == "LocalExecutor"
    assert config["core"]["load_examples"] == "False"
    assert config["core"]["simple_auth_manager_users"] == "ops:admin"
    assert config["core"]["dags_folder"].endswith("/airflow_dags")


def test_metadata_url_quotes_the_password_and_uses_the_airflow_database(
    postgres: PostgresSettings,
) -> None:
    assert airflow.metadata_url(postgres) == (
        "postgresql+psycopg2://dp:p%40ss%3A%2Fword@127.0.0.1:5432/airflow"
    )


def test_derived_keys_are_stable_distinct_and_fernet_shaped(
    settings: airflow.AirflowSettings,
) -> None:
    again = airflow.AirflowSettings(secret_key="root-secret", admin_password="x")
    assert settings.fernet_key() == again.fernet_key()
    assert len(base64.urlsafe_b64decode(settings.fernet_key())) == 32
    assert settings.derived_key("jwt") != settings.derived_key("api-session")
    other = airflow.AirflowSettings(secret_key="another", admin_password="x")
    assert other.derived_key("jwt") != settings.derived_key("jwt")


@pytest.mark.parametrize(
    ("transport", "url", "expected"),
    [
        ("disabled", "", None),
        ("console", "", {"type": "console"}),
        ("http", "http://127.0.0.1:5000", {"type": "http", "url": "http://127.0.0.1:5000"}),
    ],
)
def test_openlineage_transport_rendered_from_settings(
    tmp_path: Path,
    postgres: PostgresSettings,
    transport: str,
    url: str,
    expected: dict[str, str] | None,
) -> None:
    settings = airflow.AirflowSettings(
        secret_key="k", admin_password="x", openlineage_transport=transport, openlineage_url=url
    )
    section = airflow.render_config(tmp_path, settings, postgres)["openlineage"]
    assert section["disabled"] == str(expected is None)
    if expected is None:
        assert "transport" not in section
    else:
        assert json.loads(section["transport"]) == expected


def test_write_config_is_private_and_readable_by_airflow(
    tmp_path: Path, settings: airflow.AirflowSettings, postgres: PostgresSettings
) -> None:
    path = airflow.write_config(tmp_path / "home", settings, postgres)
    for secret_file in (path, tmp_path / "home" / "passwords.json"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    parser = configparser.RawConfigParser()
    parser.read(path)
    assert parser["api_auth"]["jwt_secret"] == settings.derived_key("jwt").hex()
    passwords = json.loads((tmp_path / "home" / "passwords.json").read_text())
    assert passwords == {"ops": "s3cret"}


def test_write_config_refuses_missing_secrets(
    tmp_path: Path, postgres: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataplatform.native.services import PlatformError

    # Production (the default) refuses the empty secret when the settings are built...
    monkeypatch.setenv("DATAPLATFORM_ENV", "production")
    with pytest.raises(ValueError, match="dataplatform env init"):
        airflow.AirflowSettings(secret_key="")
    # ...and development, which allows placeholders elsewhere, when the config is written.
    monkeypatch.setenv("DATAPLATFORM_ENV", "development")
    with pytest.raises(PlatformError, match="dataplatform env init"):
        airflow.write_config(tmp_path, airflow.AirflowSettings(secret_key=""), postgres)


def test_process_environment_puts_airflow_first_then_the_platform_venv(
    tmp_path: Path, settings: airflow.AirflowSettings
) -> None:
    env = airflow.process_environment(tmp_path, settings)
    path = env["PATH"].split(":")
    assert path[0] == str(settings.venv / "bin")
    assert path[1] == str(Path(sys.executable).parent)
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["PYSPARK_PYTHON"] == str(Path(sys.executable).parent / "python")


def test_airflow_services_start_in_order_and_listen_only_on_the_api_port() -> None:
    from dataplatform.native.services import Context

    services = airflow.AIRFLOW_SERVICES
    assert [s.name for s in services] == [
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ]
    ctx = Context.load("advanced")
    assert services[0].ports(ctx) == (airflow.get_airflow_settings().port,)
    for service in services[1:]:
        assert service.ports(ctx) == ()
        assert "airflow-apiserver" in service.depends_on
    commands = {s.name: s.command(ctx) for s in services}
    # Log servers would bind every interface; the shared log folder makes them unnecessary.
    assert "--skip-serve-logs" in commands["airflow-scheduler"]
    assert "--skip-serve-logs" in commands["airflow-triggerer"]
    assert "db migrate" in commands["airflow-apiserver"][-1]


@pytest.mark.parametrize("first", ["dataplatform.native.airflow", "dataplatform.native.services"])
def test_airflow_services_import_in_either_order(first: str) -> None:
    code = (
        f"import {first}\n"
        "from dataplatform.native.airflow import AIRFLOW_SERVICES\n"
        "from dataplatform.native import services\n"
        "print(len(AIRFLOW_SERVICES), services.Service.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "Service"]
