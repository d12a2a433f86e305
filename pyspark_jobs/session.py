"""The one place that builds a `SparkSession`: jars, Delta, s3a and local-mode settings.

The JVM jars Spark needs beyond the pyspark wheel (Delta, the Kafka source, hadoop-aws, the
Postgres driver) are resolved by Maven from `pyspark_jobs/pom.xml` into
`<DATAPLATFORM_JARS_DIR>/spark` and passed as `spark.jars`. Ivy (`spark.jars.packages`,
`configure_spark_with_delta_pip`) is not used: it ignores Maven mirrors and would download at
every cold start. The same folder holds the project's own Delta log store
(`pyspark_jobs/logstore`, built by `quick_start.sh`), which takes each table's commit lock.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

from pyspark.sql import SparkSession

from dataplatform.settings import (
    PostgresSettings,
    S3Settings,
    get_postgres_settings,
    get_runtime_settings,
    get_s3_settings,
)
from dataplatform.spark_settings import SparkSettings, get_spark_settings

logger = logging.getLogger(__name__)

#: The command that fills the jar folder; `quick_start.sh` runs it too.
RESOLVE_JARS_COMMAND = (
    "mvn -q -f pyspark_jobs/pom.xml dependency:copy-dependencies "
    "-DincludeScope=runtime -DoutputDirectory={jars_dir}"
)

#: The log store for s3a:// tables: Delta's S3 store plus the table's cross-process commit lock
#: around each put of `_delta_log/N.json` (pyspark_jobs/logstore, docs/LAKEHOUSE.md).
LOCKED_LOG_STORE = "dataplatform.delta.PostgresLockedS3LogStore"

#: Spark loggers turned down to ERROR whatever `SPARK_LOG_LEVEL` says, with why.
QUIETED_LOGGERS = {
    # Warns once per Kafka record read outside a task's own thread, which is every record
    # landing checks (a Python UDF's input is read by a feeder thread): 1,300 lines a batch at
    # 1,000 records/s, which rotated landing's 20 MB log every four minutes.
    "org.apache.spark.sql.kafka010.consumer.KafkaDataConsumer": "ERROR",
}

#: Conf keys whose values are never logged.
_SECRET_KEYS = frozenset(
    {
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.dataplatform.lakelock.jdbc.password",
    }
)


class SparkJarsMissingError(RuntimeError):
    """The Maven-resolved jar folder is missing or empty."""


def spark_jars_dir() -> Path:
    """The folder of Maven-resolved Spark jars: `<DATAPLATFORM_JARS_DIR>/spark`."""
    return get_runtime_settings().jars_dir / "spark"


def spark_jars(jars_dir: Path | None = None) -> list[Path]:
    """List the jars to pass as `spark.jars`.

    Args:
        jars_dir: The folder to read; defaults to `spark_jars_dir()`.

    Returns:
        The `.jar` files of the folder, sorted by name.

    Raises:
        SparkJarsMissingError: The folder is missing or holds no jar. Without the jars the
            session would start and then fail on the first Delta or s3a call with a
            `ClassNotFoundException` that does not say how to fix it.
    """
    folder = jars_dir or spark_jars_dir()
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise SparkJarsMissingError(
            f"no Spark jars in {folder}: run ./quick_start.sh, or resolve them with "
            f"`{RESOLVE_JARS_COMMAND.format(jars_dir=folder)}` from the repository root"
        )
    return jars


def s3a_conf(settings: S3Settings) -> dict[str, str]:
    """Hadoop s3a settings (as `spark.hadoop.*` keys) for the endpoint in `settings`.

    Path-style addressing because local S3 servers (SeaweedFS, MinIO) serve one host, not a
    DNS name per bucket; static keys because there is no instance profile off AWS.

    Args:
        settings: The S3 endpoint, credentials and region.

    Returns:
        Spark conf keys and values.
    """
    endpoint = urlsplit(settings.endpoint_url)
    return {
        "spark.hadoop.fs.s3a.endpoint": settings.endpoint_url,
        "spark.hadoop.fs.s3a.endpoint.region": settings.region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.scheme == "https").lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.access.key": settings.access_key.get_secret_value(),
        "spark.hadoop.fs.s3a.secret.key": settings.secret_key.get_secret_value(),
    }


def commit_lock_conf(postgres: PostgresSettings) -> dict[str, str]:
    """The log store with the commit lock, and where it finds the lock (as Spark conf keys).

    Args:
        postgres: The database holding the advisory locks (the password goes into the Hadoop
            conf, as the S3 secret does; it is never logged).

    Returns:
        Spark conf keys and values.
    """
    return {
        "spark.delta.logStore.s3a.impl": LOCKED_LOG_STORE,
        "spark.hadoop.dataplatform.lakelock.jdbc.url": postgres.jdbc_url(),
        "spark.hadoop.dataplatform.lakelock.jdbc.user": postgres.user,
        "spark.hadoop.dataplatform.lakelock.jdbc.password": postgres.password.get_secret_value(),
        "spark.hadoop.dataplatform.lakelock.timeout.ms": str(
            int(postgres.commit_lock_timeout_s * 1000)
        ),
    }


def session_conf(
    app_name: str,
    *,
    s3: S3Settings,
    postgres: PostgresSettings,
    spark: SparkSettings,
    jars: list[Path],
    master: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every conf key `build_spark_session` sets, without starting anything.

    Args:
        app_name: `spark.app.name`.
        s3: The S3 endpoint for s3a.
        postgres: Where the tables' commit locks live.
        spark: Master, memory, partitions, UI and the other Spark settings.
        jars: The jars to pass as `spark.jars`.
        master: Overrides `spark.master`.
        extra_conf: Applied last, so a job can override any key.

    Returns:
        Spark conf keys and values.
    """
    conf = {
        "spark.app.name": app_name,
        "spark.master": master or spark.master,
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.driver.memory": spark.driver_memory,
        # Loopback unless told otherwise: a laptop or CI runner must not expose the driver or
        # its block manager, and the host name may not resolve at all in a sandbox.
        "spark.driver.host": spark.driver_host,
        "spark.driver.bindAddress": spark.driver_bind_address,
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        # Event times are UTC in the contracts; a machine's local zone must not leak into
        # timestamps rendered as strings or into date partitions.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(get_runtime_settings().data_dir / "spark-warehouse"),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Schema changes are deliberate (a new contract version), never a side effect of a write.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Dates and timestamps are proleptic Gregorian end to end (the contracts, Arrow,
        # delta-rs). Spark's default for Parquet refuses to write a date before 1582 (or a
        # timestamp before 1900) that a client sent and the contract accepted, which would
        # stop curation on one record; this lake holds no files from Spark 2's calendar.
        # Timestamps as Parquet's standard TIMESTAMP_MICROS, not Spark's legacy INT96, which
        # other readers (delta-rs, pyarrow) read as nanoseconds: years before 1678 overflow.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        **{
            f"spark.sql.parquet.{kind}RebaseModeIn{io}": "CORRECTED"
            for kind in ("datetime", "int96")
            for io in ("Read", "Write")
        },
        **s3a_conf(s3),
        **commit_lock_conf(postgres),
    }
    conf.update(extra_conf or {})
    return conf


def build_spark_session(
    app_name: str,
    *,
    settings: S3Settings | None = None,
    master: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Build (or get) the process's Spark session with Delta and s3a configured.

    Static settings (jars, master, driver memory and host) only take effect when this call
    starts the JVM; if a session already runs in the process, `getOrCreate` returns it with
    only the SQL settings updated.

    Args:
        app_name: The application name shown in logs and the Spark UI.
        settings: The S3 endpoint; defaults to `get_s3_settings()` (env vars `S3_*`).
        master: Overrides `SPARK_MASTER` (default `local[2]`).
        extra_conf: Extra Spark conf keys, applied last.

    Returns:
        The Spark session.

    Raises:
        SparkJarsMissingError: The Maven-resolved jars are not there.
    """
    s3 = settings or get_s3_settings()
    spark_settings = get_spark_settings()
    conf = session_conf(
        app_name,
        s3=s3,
        postgres=get_postgres_settings(),
        spark=spark_settings,
        jars=spark_jars(),
        master=master,
        extra_conf=extra_conf,
    )
    logger.info(
        "starting Spark session %s",
        app_name,
        extra={"spark_conf": {k: "***" if k in _SECRET_KEYS else v for k, v in conf.items()}},
    )
    started = time.monotonic()
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(spark_settings.log_level)
    log4j = session._jvm.org.apache.logging.log4j  # type: ignore[union-attr]
    for name, level in QUIETED_LOGGERS.items():
        log4j.core.config.Configurator.setLevel(name, log4j.Level.getLevel(level))
    logger.info(
        "Spark session %s ready in %.1f s (Spark %s, master %s)",
        app_name,
        time.monotonic() - started,
        session.version,
        session.sparkContext.master,
    )
    return session
