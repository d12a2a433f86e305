"""`dataplatform run <service>`: run one of the platform's own processes in the foreground."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from dataplatform.cli import jobs
from dataplatform.settings import (
    get_exporter_settings,
    get_ingestor_settings,
    get_postgres_settings,
)

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
) -> None:
    """The FastAPI ingestor under uvicorn (uvloop + httptools), JSON logs to stderr."""
    import uvicorn

    from dataplatform.logs import configure_logging

    if kafka_sink_if_host:
        os.environ["INGESTOR_SINK"] = sink_for_network(kafka_sink_if_host)
        get_ingestor_settings.cache_clear()
    settings = get_ingestor_settings()
    log.info("ingestor sink: %s", settings.sink)
    configure_logging(settings.log_level)
    # One worker: metrics, the rate limiter and the in-flight bound are per process; scale by
    # running more processes behind a balancer.
    uvicorn.run(
        "fastapi_app.app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=int(settings.sink_timeout_s) + 5,
    )


@run_app.command("exporter")
def run_exporter(
    once: Annotated[bool, typer.Option("--once", help="Export what is pending, then exit")] = False,
) -> None:
    """The starter lake exporter: outbox -> bronze Delta; `/metrics` on EXPORTER_METRICS_PORT."""
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
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
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
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("document landing polling every %gs", settings.poll_interval_s)
    try:
        landing.run(stop)
    finally:
        store.close()
