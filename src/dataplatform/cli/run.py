"""`dataplatform run <service>`: run one of the platform's own processes in the foreground."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from dataplatform.cli import jobs
from dataplatform.settings import (
    get_exporter_settings,
    get_ingestor_settings,
    get_postgres_settings,
    get_runtime_settings,
)
from dataplatform.shutdown import stop_on_signals

run_app = typer.Typer(
    help="Run one of the platform's processes in the foreground.", no_args_is_help=True
)

log = logging.getLogger(__name__)

run_app.command("landing")(jobs.landing)
run_app.command("curation")(jobs.curation)


def sink_for_network(kafka_host: str) -> str:
    """Compose: `kafka` when the Kafka service's name resolves, else `postgres` (the outbox).

    Compose cannot tell a container which `--profile` started it, but its network resolves a
    service's name only when that profile runs it: the starter profile has no Kafka.
    """
    try:
        socket.getaddrinfo(kafka_host, None)
    except socket.gaierror:
        return "postgres"
    return "kafka"


def otlp_environment_for_network(endpoint: str) -> dict[str, str]:
    """Compose: the OTEL_* variables that send traces to `endpoint` (OTLP/HTTP) when its host
    resolves (the profile runs the collector, as natively only the advanced track does), else
    none: a collector that is not there would only fill the log with failed exports."""
    host = urlsplit(endpoint).hostname or ""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return {}
    return {
        "OTEL_SERVICE_NAME": "ingestor",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }


@run_app.command("ingestor")
def run_ingestor(
    host: Annotated[str | None, typer.Option(help="Default: INGESTOR_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: INGESTOR_PORT")] = None,
    kafka_sink_if_host: Annotated[
        str | None,
        typer.Option(
            help="Compose: the Kafka sink when this host name resolves (its profile runs Kafka), "
            "else the Postgres outbox; overrides INGESTOR_SINK"
        ),
    ] = None,
    otlp_if_host: Annotated[
        str | None,
        typer.Option(
            help="Compose: send traces to this OTLP/HTTP endpoint when its host name resolves "
            "(its profile runs the collector); overrides the OTEL_* exporter variables"
        ),
    ] = None,
) -> None:
    """The FastAPI ingestor under uvicorn (uvloop + httptools), JSON logs to stderr."""
    import uvicorn

    from dataplatform.logs import configure_logging, logging_config

    if kafka_sink_if_host:
        os.environ["INGESTOR_SINK"] = sink_for_network(kafka_sink_if_host)
        get_ingestor_settings.cache_clear()
    if otlp_if_host:
        os.environ.update(otlp_environment_for_network(otlp_if_host))
    settings = get_ingestor_settings()
    log.info("ingestor sink: %s, %d worker(s)", settings.sink, settings.workers)
    configure_logging(settings.log_level)
    metrics_dir = None
    if settings.workers > 1:
        # prometheus_client's multiprocess mode: each worker writes its values to files here
        # and `/metrics` adds them up. The workers read the variable when they start.
        metrics_dir = (
            get_runtime_settings().data_dir / "run" / f"ingestor-metrics-{port or settings.port}"
        )
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "fastapi_app.app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=logging_config(settings.log_level),
        limit_concurrency=settings.worker_share().max_connections,
        timeout_keep_alive=settings.keepalive_s,
        # A worker answers the supervisor's pings once it has started Python and unpickled its
        # config: on a loaded machine that takes longer than uvicorn's 5 s, which then kills
        # and restarts it forever.
        timeout_worker_healthcheck=60,
        timeout_graceful_shutdown=int(settings.sink_timeout_s) + 5,
    )
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@run_app.command("exporter")
def run_exporter(
    once: Annotated[bool, typer.Option("--once", help="Export what is pending, then exit")] = False,
) -> None:
    """The lake exporter: outbox -> bronze Delta (starter); `/metrics` on EXPORTER_METRICS_PORT
    with the lake's Delta table metrics (every track)."""
    from prometheus_client import start_http_server

    from dataplatform.exporter import LakeExporter
    from dataplatform.lake import Lake
    from dataplatform.logs import configure_logging

    settings = get_exporter_settings()
    configure_logging(settings.log_level)
    exporter = LakeExporter(get_postgres_settings(), Lake.load(), settings)
    if once:
        exporter.migrate()
        for batch in exporter.export_once():
            log.info(
                "exported",
                extra={
                    "fields": {"entity": batch.entity, "rows": batch.rows, "version": batch.version}
                },
            )
        return
    start_http_server(settings.metrics_port, addr=settings.host)
    stop = stop_on_signals(log, "stopping after the current batch")
    if settings.lake_metrics_interval_s:
        from dataplatform.observability.delta_metrics import start_delta_metrics

        start_delta_metrics(
            Lake.load(),
            interval_s=settings.lake_metrics_interval_s,
            small_file_bytes=settings.small_file_bytes,
            stop=stop,
        )
    log.info(
        "lake exporter polling every %gs; metrics on %s:%d",
        settings.poll_interval_s,
        settings.host,
        settings.metrics_port,
    )
    exporter.run(stop)


@run_app.command("document-landing")
def run_document_landing(
    once: Annotated[bool, typer.Option("--once", help="Land what is stored, then exit")] = False,
    heartbeat_path: Annotated[
        Path | None,
        typer.Option(help="Default: <data dir>/run/document-landing/heartbeat.json"),
    ] = None,
) -> None:
    """Documents: the document store (MongoDB/FerretDB) -> bronze and silver Delta."""
    from dataplatform.documents.landing import DocumentLanding
    from dataplatform.documents.store import DocumentStore
    from dataplatform.lake import Lake
    from dataplatform.logs import configure_logging
    from dataplatform.settings import get_document_landing_settings, get_mongo_settings

    settings = get_document_landing_settings()
    configure_logging(settings.log_level)
    store = DocumentStore(get_mongo_settings())
    landing = DocumentLanding(
        store, Lake.load(), get_postgres_settings(), settings, heartbeat_path=heartbeat_path
    )
    if once:
        while (batch := landing.land_once()) is not None:
            log.info("landed through ingest sequence %d", batch.through_seq)
        return
    stop = stop_on_signals(log, "stopping after the current batch")
    log.info("document landing polling every %gs", settings.poll_interval_s)
    try:
        landing.run(stop)
    finally:
        store.close()
