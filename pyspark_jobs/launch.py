"""How the Spark jobs are launched and get their session.

The lake's layout, settings and heartbeat are Spark-free and live in `dataplatform.lake`.
"""

from __future__ import annotations

import logging
import os
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
        # line decides (the DAGs pass the same options).
        **({"spark.driver.extraJavaOptions": BATCH_JOB_JAVA_OPTIONS} if batch else {}),
        **(extra_conf or {}),
    }
    started = time.monotonic()
    session = build_spark_session(app_name, extra_conf=conf)
    logger.info("%s: session in %.1f s", app_name, time.monotonic() - started)
    return session
