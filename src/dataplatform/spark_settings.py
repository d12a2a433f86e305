"""Settings of the Spark jobs: env vars `SPARK_*` (listed in `.env.example`) -> `SparkSettings`.

Spark-free, so the CLI and the lake layout (`dataplatform.lake`) read them too. Connection
settings (S3, Kafka, Postgres) come from `dataplatform.settings`; this class holds only what is
specific to running Spark. Nothing is built at import time: call `get_spark_settings()`.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from dataplatform.settings import settings_config

#: The driver JVM's options of the batch jobs (curation, data quality, maintenance): the C1
#: compiler only. A run lasts a minute or less and spends it running Delta's and Catalyst's code
#: for the first time; C2's optimised code comes too late to repay its compile time (curation of
#: 100 new rows: 0.6x the wall time, docs/BENCHMARKS.md). Landing, which runs for days, keeps the
#: JVM's default. The DAGs pass the same options (`airflow_dags/common`).
BATCH_JOB_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"

#: The levels `SparkContext.setLogLevel` accepts.
SparkLogLevel = Literal["ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN"]


class SparkSettings(BaseSettings):
    """How the Spark jobs run: master, driver size, parallelism, triggers and checkpoints."""

    model_config = settings_config("SPARK_")

    #: `local[N]` natively; `spark://...`, `k8s://...` or `yarn` when scaled out.
    master: str = "local[2]"
    #: Only takes effect when the session starts the JVM (the first session of a process).
    driver_memory: str = "1g"
    #: Where executors reach the driver. Loopback natively (local mode: nothing outside the
    #: process connects, and a sandbox's host name may not resolve); a container submitting to a
    #: standalone cluster names itself (compose: the Airflow scheduler runs the tasks' drivers).
    driver_host: str = "127.0.0.1"
    #: Address the driver's ports bind to: loopback natively, `0.0.0.0` inside a container.
    driver_bind_address: str = "127.0.0.1"
    #: Spark's default of 200 is sized for clusters; a handful of cores wants a few.
    shuffle_partitions: int = Field(default=4, ge=1)
    #: Processing-time trigger of the streaming jobs, in seconds.
    trigger_interval_s: float = Field(default=1.0, gt=0)
    #: Root of the streaming checkpoints; empty means `s3a://<bucket>/_checkpoints`.
    checkpoint_root: str = ""
    #: The Spark UI costs a port and memory; turn it on when debugging a job.
    ui_enabled: bool = False
    log_level: SparkLogLevel = "WARN"


@cache
def get_spark_settings() -> SparkSettings:
    """Cached `SparkSettings`."""
    return SparkSettings()
