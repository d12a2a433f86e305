"""The started track decides every native service's environment, whatever `.env` says."""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from dataplatform.cli import main as cli
from dataplatform.native import runtime, supervisor
from dataplatform.native.services import Context, PlatformError
from dataplatform.settings import (
    KafkaSettings,
    PostgresSettings,
    RuntimeSettings,
    S3Settings,
    Track,
    get_runtime_settings,
)


@pytest.fixture
def env_says_advanced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`.env.example`'s default: DATAPLATFORM_TRACK=advanced."""
    monkeypatch.setenv("DATAPLATFORM_TRACK", "advanced")
    get_runtime_settings.cache_clear()
    yield
    get_runtime_settings.cache_clear()


def _context(tmp_path: Path, track: Track) -> Context:
    return Context(
        runtime=RuntimeSettings(data_dir=tmp_path, track="advanced"),
        postgres=PostgresSettings(),
        kafka=KafkaSettings(),
        s3=S3Settings(),
        track=track,
    )


def _program_environment(conf: Path, program: str) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.read(conf)
    pairs = parser[f"program:{program}"]["environment"].split(",")
    return {key: value.strip('"') for key, _, value in (pair.partition("=") for pair in pairs)}


@pytest.mark.parametrize(("track", "sink"), [("starter", "postgres"), ("intermediate", "kafka")])
def test_render_config_ingestor_sink_follows_started_track(
    tmp_path: Path, track: Track, sink: str
) -> None:
    conf = supervisor.render_config(_context(tmp_path, track))
    env = _program_environment(conf, "ingestor")
    assert env["INGESTOR_SINK"] == sink
    assert env["DATAPLATFORM_TRACK"] == track
    # Every process agrees on the track, not only the ingestor.
    assert _program_environment(conf, "lake-exporter")["DATAPLATFORM_TRACK"] == track


def test_up_runs_services_with_the_started_track_not_the_env_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Track] = []

    def preflight(ctx: Context, track: Track) -> list[runtime.Problem]:
        seen.append(ctx.track)
        raise PlatformError("stop here")

    monkeypatch.setattr(runtime, "preflight", preflight)
    with pytest.raises(PlatformError, match="stop here"):
        runtime.up(_context(tmp_path, "advanced"), "starter")
    assert seen == ["starter"]


def test_cli_up_track_starter_overrides_env_track(
    env_says_advanced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[Track, Track]] = []
    monkeypatch.setattr(
        runtime, "up", lambda ctx, track, progress: started.append((ctx.track, track))
    )
    result = CliRunner().invoke(cli.app, ["up", "--track", "starter"])
    assert result.exit_code == 0, result.output
    assert started == [("starter", "starter")]


def test_cli_doctor_checks_the_running_track(
    env_says_advanced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[tuple[Track, Track]] = []

    def preflight(ctx: Context, track: Track) -> list[runtime.Problem]:
        checked.append((ctx.track, track))
        return []

    monkeypatch.setattr(runtime, "running_track", lambda _ctx: "starter")
    monkeypatch.setattr(runtime, "preflight", preflight)
    monkeypatch.setattr(cli.dockerhost, "inspect_host", lambda: None)
    result = CliRunner().invoke(cli.app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert checked == [("starter", "starter")]
    assert "starter track" in result.output


def test_running_track_read_back_from_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _context(tmp_path, "starter")
    monkeypatch.setattr(supervisor, "is_running", lambda _ctx: True)
    assert runtime.running_track(ctx) is None
    ctx.runtime.run_dir.mkdir(parents=True)
    runtime.track_path(ctx).write_text("starter", encoding="utf-8")
    assert runtime.running_track(ctx) == "starter"
    monkeypatch.setattr(supervisor, "is_running", lambda _ctx: False)
    assert runtime.running_track(ctx) is None


def test_render_config_s3_restarts_when_its_keys_change(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "starter")
    first = _program_environment(supervisor.render_config(ctx), "s3")["SEAWEEDFS_CONFIG_DIGEST"]
    rotated = dataclasses.replace(ctx, s3=S3Settings(secret_key=SecretStr("a-new-secret")))
    second = _program_environment(supervisor.render_config(rotated), "s3")
    assert second["SEAWEEDFS_CONFIG_DIGEST"] != first
    assert "a-new-secret" not in (tmp_path / "run" / "supervisord.conf").read_text()
