"""Where the lakehouse tables live, the jobs' settings, their heartbeat and how they are launched.

Light on purpose: no Spark import at module level, so the CLI (delta-rs commands) and the
native runtime's health probe can import it without starting or loading a JVM.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from dataplatform.contracts import ENTITIES, Entity
from dataplatform.settings import (
    S3Settings,
    get_runtime_settings,
    get_s3_settings,
    settings_config,
)
from pyspark_jobs.settings import get_spark_settings

if TYPE_CHECKING:
    from deltalake import DeltaTable as DeltaRsTable
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

Layer = Literal["bronze", "silver", "gold"]

#: Quarantine tables are split by the job writing them, so no two jobs append to one table:
#: `quarantine/landing/<domain>/<entity>` (landing: contract failures straight from Kafka) and
#: `quarantine/curation/<domain>/<entity>` (curation: contract re-check and `drop`
#: expectations).
QuarantineTable = Literal["landing", "curation"]
QUARANTINE_TABLES: tuple[QuarantineTable, ...] = ("landing", "curation")
#: The `stage` column of a quarantine row -> the table it is in.
QUARANTINE_TABLE_OF_STAGE: dict[str, QuarantineTable] = {
    "landing": "landing",
    "curation": "curation",
    "expectation": "curation",
}

#: Gold products per domain: `gold/<domain>/<product>`.
GOLD_PRODUCTS: dict[str, str] = {
    "finance": "daily_account_totals",
    "insurance": "claims_daily",
}

#: The per-run expectation results and the curation job's processed-version log.
EXPECTATION_RESULTS_TABLE = "_quality/expectation_results"
CURATION_STATE_TABLE = "_state/curation_runs"
#: Landing's registry of Kafka topic ids and their order-token epochs, one file per entity.
SOURCE_EPOCHS_DIR = "_state/source_epochs"


def quarantine_path(entity: Entity, table: QuarantineTable) -> str:
    """`quarantine/<table>/<domain>/<entity>`: the quarantine table written by `table`'s job."""
    return f"quarantine/{table}/{entity.domain}/{entity.name}"


class LakehouseSettings(BaseSettings):
    """Knobs of the lakehouse jobs: env vars `LAKEHOUSE_*` (listed in `.env.example`)."""

    model_config = settings_config("LAKEHOUSE_")

    #: Folder inside the bucket that holds every table; empty in production. Tests set their
    #: own so they never touch the real tables.
    lake_prefix: str = ""
    #: Currency the curated amounts are converted to (ISO 4217, seeded FX rates exist for it).
    reporting_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    #: Where a landing query with a fresh checkpoint starts: `earliest` (nothing acknowledged
    #: is skipped), `latest`, or Spark's per-partition JSON.
    starting_offsets: str = "earliest"
    #: Upper bound of Kafka records per micro-batch (per entity), so a backlog is worked off in
    #: bounded batches instead of one huge one.
    max_offsets_per_trigger: int = Field(default=200_000, ge=1)
    #: A heartbeat older than this means the landing job is stuck or gone.
    heartbeat_max_age_s: float = Field(default=60.0, gt=0)
    #: Seconds between checks that the landing job's topics are still the ones its checkpoint
    #: was built on (a recreated topic must stop the job, not be read from a stale offset).
    #: 0 checks before every micro-batch (one metadata request, a few milliseconds).
    topic_check_interval_s: float = Field(default=0.0, ge=0)
    #: Commits between two Delta checkpoints of the bronze and quarantine tables. Writing a
    #: checkpoint rebuilds the table's whole state inside the landing micro-batch that
    #: triggers it (measured here: +2.5-5 s on a 1 s batch), so bronze, which gets a commit
    #: per micro-batch, checkpoints less often than Delta's default of 10; readers replay at
    #: most this many small JSON commits.
    bronze_checkpoint_interval: int = Field(default=100, ge=1)


@cache
def get_lakehouse_settings() -> LakehouseSettings:
    """Cached `LakehouseSettings`."""
    return LakehouseSettings()


def entity_by_path(path: str) -> Entity:
    """Find an entity by `<domain>/<entity>` (e.g. `finance/transactions`).

    Raises:
        ValueError: No such entity; the message lists the known ones.
    """
    for entity in ENTITIES:
        if f"{entity.domain}/{entity.name}" == path.strip("/"):
            return entity
    known = ", ".join(f"{e.domain}/{e.name}" for e in ENTITIES)
    raise ValueError(f"unknown entity {path!r}: one of {known}")


def select_entities(paths: list[str] | None) -> list[Entity]:
    """The entities named by `paths`, or every entity when none is given."""
    return [entity_by_path(path) for path in paths] if paths else list(ENTITIES)


@dataclass(frozen=True)
class Lake:
    """The table layout of one lakehouse root: `<bucket>/[<prefix>/]<layer>/<domain>/<entity>`.

    Attributes:
        s3: The object store and bucket.
        prefix: Folder inside the bucket (empty: the real tables).
        checkpoint_root: Streaming checkpoints root; empty means `<root>/_checkpoints`.
    """

    s3: S3Settings
    prefix: str = ""
    checkpoint_root: str = field(default="")

    @classmethod
    def load(cls, *, prefix: str | None = None, s3: S3Settings | None = None) -> Lake:
        """The lake of the current settings, optionally under another prefix."""
        chosen = get_lakehouse_settings().lake_prefix if prefix is None else prefix
        root = get_spark_settings().checkpoint_root if not chosen else ""
        return cls(s3=s3 or get_s3_settings(), prefix=chosen.strip("/"), checkpoint_root=root)

    def relative(self, table: str) -> str:
        """`[<prefix>/]<table>` inside the bucket."""
        return f"{self.prefix}/{table.strip('/')}" if self.prefix else table.strip("/")

    def uri(self, table: str, *, scheme: Literal["s3", "s3a"] = "s3a") -> str:
        """The URI of `table` (`<layer>/<domain>/<entity>`): s3a for Spark, s3 for delta-rs."""
        return self.s3.lake_uri(self.relative(table), scheme=scheme)

    def table(self, layer: Layer, entity: Entity, *, scheme: Literal["s3", "s3a"] = "s3a") -> str:
        """The URI of an entity's table in `layer`."""
        return self.uri(entity.table_path(layer), scheme=scheme)

    def quarantine(
        self, entity: Entity, table: QuarantineTable, *, scheme: Literal["s3", "s3a"] = "s3a"
    ) -> str:
        """The URI of the entity's quarantine table written by `table`'s job."""
        return self.uri(quarantine_path(entity, table), scheme=scheme)

    def source_epochs(self, entity: Entity) -> str:
        """The URI (s3a) of the entity's epoch registry file."""
        return self.uri(f"{SOURCE_EPOCHS_DIR}/{entity.domain}/{entity.name}.json")

    def gold(self, entity: Entity, *, scheme: Literal["s3", "s3a"] = "s3a") -> str:
        """The URI of the domain's gold product fed by `entity`."""
        return self.uri(f"gold/{entity.domain}/{GOLD_PRODUCTS[entity.domain]}", scheme=scheme)

    def delta_rs(self, table: str) -> DeltaRsTable | None:
        """`table` (`<layer>/<domain>/<entity>`) opened with delta-rs, or None if missing.

        Metadata reads (versions, table properties, commit metrics, small state tables) go
        through delta-rs: it answers in milliseconds where a Spark job costs a second or more
        on a small machine.
        """
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(
                self.uri(table, scheme="s3"), storage_options=self.s3.delta_storage_options()
            )
        except TableNotFoundError:
            return None

    def checkpoint(self, job: str) -> str:
        """The checkpoint folder of one streaming query."""
        if self.checkpoint_root:
            return f"{self.checkpoint_root.rstrip('/')}/{job}"
        return self.uri(f"_checkpoints/{job}")


def landing_job_name(entity: Entity) -> str:
    """Stable name of an entity's landing query; it names the checkpoint too."""
    return f"landing-{entity.domain}-{entity.name}"


# --------------------------------------------------------------------------- heartbeat


def default_heartbeat_path() -> Path:
    """`<DATAPLATFORM_DATA_DIR>/run/landing/heartbeat.json`."""
    return get_runtime_settings().run_dir / "landing" / "heartbeat.json"


def write_heartbeat(path: Path, state: dict[str, Any]) -> None:
    """Replace the heartbeat file atomically, so a probe never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**state, "pid": os.getpid(), "updated_at": datetime.now(UTC).isoformat()}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path)


def read_heartbeat(path: Path | None = None) -> dict[str, Any] | None:
    """The last heartbeat, or None when there is none (or it is unreadable)."""
    target = path or default_heartbeat_path()
    try:
        data: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def heartbeat_healthy(path: Path | None = None, *, max_age_s: float | None = None) -> bool:
    """True when the landing job reported `running` within `max_age_s` seconds.

    Spark reports progress after every micro-batch and, when idle, every 10 s, so a fresh
    heartbeat means the driver is alive and its queries are making progress.

    Args:
        path: The heartbeat file; defaults to `default_heartbeat_path()`.
        max_age_s: Staleness limit; defaults to `LAKEHOUSE_HEARTBEAT_MAX_AGE_S`.
    """
    beat = read_heartbeat(path)
    if not beat or beat.get("status") != "running":
        return False
    limit = max_age_s if max_age_s is not None else get_lakehouse_settings().heartbeat_max_age_s
    try:
        updated = datetime.fromisoformat(beat["updated_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return (datetime.now(UTC) - updated).total_seconds() <= limit


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


def start_job_session(app_name: str, *, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """The Spark session of a job, with the checks `build_spark_session` cannot make.

    Python workers (the contract validation UDF) must run this interpreter, the one with the
    project installed, not whatever `python3` is first on PATH; and under `spark-submit` the
    jars must have been passed on its command line.

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
        **(extra_conf or {}),
    }
    started = time.monotonic()
    session = build_spark_session(app_name, extra_conf=conf)
    logger.info("%s: session in %.1f s", app_name, time.monotonic() - started)
    return session
