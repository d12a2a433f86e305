"""How the Spark jobs are launched and get their session.

The lake's layout, settings and heartbeat are Spark-free and live in `dataplatform.lake`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dataplatform.settings import get_runtime_settings
from dataplatform.spark_settings import BATCH_JOB_JAVA_OPTIONS, get_spark_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- launching


def spark_submit_argv(script: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The `spark-submit` command line (and extra env) that runs one of the jobs.

    `spark-submit` starts the JVM before Python runs, so the Maven-resolved jars must be on
    its command line (`--jars`): set later from Python they would miss the driver's class path.

    Args:
        script: Path of the job script, e.g. `pyspark_jobs/curation.py`.
        args: The job's own arguments.

    Returns:
        The argv and the environment variables to add.
    """
    from pyspark_jobs.session import spark_jars

    jars = ",".join(str(jar) for jar in spark_jars())
    binary = Path(sys.executable).parent / "spark-submit"
    argv = [
        str(binary),
        "--master",
        get_spark_settings().master,
        "--jars",
        jars,
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        script,
        *args,
    ]
    # spark-submit finds its Spark home with PYSPARK_PYTHON (the interpreter with pyspark).
    return argv, {"PYSPARK_PYTHON": sys.executable}


#: The first four bytes of a dynamic class-data-sharing archive (HotSpot's
#: `CDS_DYNAMIC_ARCHIVE_MAGIC`, little-endian). The JVM writes an archive's header last, so a
#: file cut short by a crash during the dump lacks it.
_DYNAMIC_ARCHIVE_MAGIC = bytes.fromhex("a8ab0bf0")


def _jvm_dir(java: Path) -> Path:
    """The folder of `libjvm.so` and the JDK's own class-data-sharing archive."""
    return Path(shutil.which(str(java)) or java).resolve().parent.parent / "lib" / "server"


def _archive_key(jvm_dir: Path, jars: list[Path]) -> str:
    """A digest of what a class-data-sharing archive depends on: the JVM build and every jar
    (path, size, modification time). The JVM checks these itself and ignores an archive that
    does not match; the key names a new archive for a new set instead."""
    digest = hashlib.sha256()
    for path in (jvm_dir / "libjvm.so", *jars):
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def class_data_sharing_options(folder: Path, java: Path, jars: list[Path]) -> str:
    """JVM options that map the classes a batch job loads from an archive made by an earlier
    run (`-XX:SharedArchiveFile`), or make that archive when this run exits
    (`-XX:ArchiveClassesAtExit`): Spark's, Delta's and Hadoop's classes are then loaded
    already parsed and verified (curation: 0.86x the wall time, docs/BENCHMARKS.md).

    One archive per JVM build and jar set (`_archive_key`); archives of other sets are
    deleted when a new one is made. Safe under concurrent runs: the JVM replaces an archive by
    removing the file before writing a new one (a run that mapped the old one keeps it), writes
    the header last, and ignores (with `-Xshare:auto`, the default) an archive it cannot use;
    a file without the header is remade.

    A JDK without its base archive (`lib/server/classes.jsa`) refuses to start with
    `-XX:ArchiveClassesAtExit`: then no option is given.

    Args:
        folder: Where the archives live (created if missing).
        java: The `java` executable the job starts.
        jars: Every jar on the job's class path.
    """
    jvm_dir = _jvm_dir(java)
    if not (jvm_dir / "classes.jsa").is_file():
        return ""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"batch-{_archive_key(jvm_dir, jars)}.jsa"
    quiet = "-Xlog:cds*=error"
    try:
        with archive.open("rb") as file:
            if file.read(len(_DYNAMIC_ARCHIVE_MAGIC)) == _DYNAMIC_ARCHIVE_MAGIC:
                return f"-XX:SharedArchiveFile={archive} {quiet}"
    except FileNotFoundError:
        pass
    for stale in folder.glob("batch-*.jsa"):
        if stale != archive:
            stale.unlink(missing_ok=True)
    return f"-XX:ArchiveClassesAtExit={archive} {quiet}"


def _batch_java_options() -> str:
    """The driver JVM options of a batch job this process starts: `BATCH_JOB_JAVA_OPTIONS` and
    the class-data-sharing archive in `<data dir>/cds`."""
    import pyspark

    from pyspark_jobs.session import spark_jars

    runtime = get_runtime_settings()
    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")) + spark_jars()
    sharing = class_data_sharing_options(runtime.data_dir / "cds", runtime.java_bin(), jars)
    return f"{BATCH_JOB_JAVA_OPTIONS} {sharing}".strip()


class JobLaunchError(RuntimeError):
    """The job was started in a way that cannot work; the message says how to start it."""


def jars_include_delta(spark_jars: str) -> bool:
    """Whether a `spark.jars` value (comma-separated paths, globs allowed) has the Delta jar."""
    for entry in filter(None, (part.strip() for part in spark_jars.split(","))):
        path = Path(entry.removeprefix("file:"))
        names = [m.name for m in path.parent.glob(path.name)] if "*" in path.name else [path.name]
        if any(name.startswith("delta-spark") for name in names):
            return True
    return False


def start_job_session(
    app_name: str, *, batch: bool = False, extra_conf: dict[str, str] | None = None
) -> SparkSession:
    """The Spark session of a job, with the checks `build_spark_session` cannot make.

    Python workers (the contract validation UDF) must run this interpreter, the one with the
    project installed, not whatever `python3` is first on PATH; and under `spark-submit` the
    jars must have been passed on its command line.

    Args:
        app_name: The application name.
        batch: A short batch job (curation, quality, maintenance): its JVM gets
            `BATCH_JOB_JAVA_OPTIONS`.
        extra_conf: Extra Spark conf keys, applied last.

    Raises:
        JobLaunchError: Started by `spark-submit` without the Delta jars.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.errors import PySparkRuntimeError

    from pyspark_jobs.session import build_spark_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Under spark-submit the JVM already runs: its conf says whether the jars were passed.
        SparkContext._ensure_initialized()
        launched = SparkConf().get("spark.jars", "") or ""
        if not jars_include_delta(launched):
            raise JobLaunchError(
                "spark-submit was started without the Delta, Kafka and s3a jars: start the job "
                "with `dataplatform run <job>`, or pass `--jars` with every jar of "
                f"{get_runtime_settings().jars_dir / 'spark'} (see docs/LAKEHOUSE.md)"
            )
    conf = {
        # Delta rebuilds a table's state from its log with this many tasks after every commit;
        # its default of 50 is sized for clusters and makes each operation on a small machine
        # several times slower (measured: overwrite 5.8 s -> 1.7 s, count 3.2 s -> 1.0 s).
        "spark.databricks.delta.snapshotPartitions": str(get_spark_settings().shuffle_partitions),
        # Applies when this call starts the JVM (`python -m`); under spark-submit the command
        # line decides (the DAGs pass the same options, without the archive).
        **(
            {"spark.driver.extraJavaOptions": _batch_java_options()}
            if batch and not os.environ.get("PYSPARK_GATEWAY_PORT")
            else {}
        ),
        **(extra_conf or {}),
    }
    started = time.monotonic()
    try:
        session = build_spark_session(app_name, extra_conf=conf)
    except PySparkRuntimeError as exc:
        options = conf.get("spark.driver.extraJavaOptions")
        if exc.getErrorClass() != "JAVA_GATEWAY_EXITED" or options in (
            None,
            BATCH_JOB_JAVA_OPTIONS,
        ):
            raise
        # A JVM that refuses the class-data-sharing options (its log says why) must not stop
        # the job: it runs without them.
        logger.warning("%s: the JVM did not start with %s; starting it without", app_name, options)
        conf["spark.driver.extraJavaOptions"] = BATCH_JOB_JAVA_OPTIONS
        session = build_spark_session(app_name, extra_conf=conf)
    logger.info("%s: session in %.1f s", app_name, time.monotonic() - started)
    return session
