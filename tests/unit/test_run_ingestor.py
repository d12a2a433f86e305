"""`dataplatform run ingestor`: the uvicorn options it derives from the ingestor's settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from dataplatform import logs
from dataplatform.cli.run import run_ingestor
from dataplatform.settings import IngestorSettings, get_ingestor_settings


@pytest.fixture
def uvicorn_options(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What `run_ingestor` passes to `uvicorn.run` (captured, nothing started)."""
    captured: dict[str, Any] = {}

    def fake_run(app: str, **options: Any) -> None:
        captured.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(logs, "configure_logging", lambda level: None)
    get_ingestor_settings.cache_clear()
    yield captured
    get_ingestor_settings.cache_clear()


def test_run_ingestor_passes_keepalive_to_uvicorn(
    uvicorn_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGESTOR_KEEPALIVE_S", "90")
    monkeypatch.setenv("INGESTOR_MAX_CONNECTIONS", "1000")
    monkeypatch.setenv("INGESTOR_WORKERS", "1")
    run_ingestor(host=None, port=None, kafka_sink_if_host=None, otlp_if_host=None)
    assert uvicorn_options["app"] == "fastapi_app.app.main:create_app"
    assert uvicorn_options["timeout_keep_alive"] == 90
    assert uvicorn_options["limit_concurrency"] == 1000


def test_ingestor_keepalive_default_outlasts_load_balancer_idle_timeout() -> None:
    # AWS ALB closes idle connections after 60 s; the server must close after it, and after
    # the 5 s of httpx's pool, or a request reusing a connection races the server's close.
    keepalive = IngestorSettings.model_fields["keepalive_s"].default
    assert keepalive > 60
    assert IngestorSettings(_env_file=None).keepalive_s == keepalive
