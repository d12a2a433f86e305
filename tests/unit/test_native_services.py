from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import SecretStr

from dataplatform.native.base import Context
from dataplatform.native.services import SERVICES, TRACK_SERVICES, PlatformError, services_for
from dataplatform.settings import (
    TRACKS,
    KafkaSettings,
    PostgresSettings,
    RuntimeSettings,
    S3Settings,
    get_mongo_settings,
)


def test_tracks_are_cumulative() -> None:
    for smaller, larger in itertools.pairwise(TRACKS):
        assert set(TRACK_SERVICES[smaller]) <= set(TRACK_SERVICES[larger])


@pytest.mark.parametrize("track", TRACKS)
def test_track_services_start_after_their_dependencies(track: str) -> None:
    seen: set[str] = set()
    for service in services_for(track):  # type: ignore[arg-type]
        assert set(service.depends_on) <= seen, f"{service.name} starts before {service.depends_on}"
        seen.add(service.name)


def test_every_track_service_is_defined() -> None:
    for names in TRACK_SERVICES.values():
        assert set(names) <= set(SERVICES)


def test_unknown_track_named_in_error() -> None:
    with pytest.raises(PlatformError, match="unknown track 'huge'"):
        services_for("huge")  # type: ignore[arg-type]


def _context(tmp_path: Path) -> Context:
    return Context(
        runtime=RuntimeSettings(data_dir=tmp_path, track="advanced"),
        postgres=PostgresSettings(password=SecretStr("pg-secret")),
        kafka=KafkaSettings(),
        s3=S3Settings(),
        track="advanced",
    )


def test_ferretdb_listens_on_loopback_without_credentials_in_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_PASSWORD", "mongo-secret")
    get_mongo_settings.cache_clear()
    try:
        command = SERVICES["mongodb"].command(_context(tmp_path))
    finally:
        get_mongo_settings.cache_clear()
    assert "-listen-addr=127.0.0.1:27017" in command
    url = next(arg for arg in command if arg.startswith("-postgresql-url="))
    assert url == "-postgresql-url=postgres://127.0.0.1:5432/ferretdb"  # clients log in
    assert "secret" not in " ".join(command)


def test_ferretdb_preflight_refuses_postgres_user_as_mongodb_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_USER", "dataplatform")
    monkeypatch.setenv("MONGODB_PASSWORD", "mongo-secret")
    get_mongo_settings.cache_clear()
    try:
        problems = [check(_context(tmp_path)) for check in SERVICES["mongodb"].preflight]
    finally:
        get_mongo_settings.cache_clear()
    assert any(problem and "POSTGRES_USER" in problem for problem in problems)


def test_documents_run_only_in_advanced_track() -> None:
    for track in ("starter", "intermediate"):
        assert not {"mongodb", "document-landing"} & set(TRACK_SERVICES[track])
    assert {"mongodb", "document-landing"} <= set(TRACK_SERVICES["advanced"])
