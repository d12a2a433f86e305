"""Where the lakehouse tables live, the lakehouse settings and the landing job's heartbeat.

Spark-free: the CLI (delta-rs commands), the exporter, the native runtime's health probe and the
Spark jobs (`pyspark_jobs`) all read the lake's layout from here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from dataplatform.contracts import ENTITIES, Entity
from dataplatform.products import product_of
from dataplatform.settings import (
    S3Settings,
    get_runtime_settings,
    get_s3_settings,
    settings_config,
)
from dataplatform.spark_settings import get_spark_settings

if TYPE_CHECKING:
    from deltalake import DeltaTable as DeltaRsTable


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
    #: Commits between two Delta checkpoints of the bronze and landing quarantine tables. Their
    #: writers write these checkpoints beside the commits, not inside them (a checkpoint
    #: rebuilds the table's whole state: +3-5 s on a 1.4 s landing micro-batch, measured), so
    #: no batch waits for one (`dataplatform.delta_checkpoints`); readers replay at most this
    #: many small JSON commits.
    bronze_checkpoint_interval: int = Field(default=100, ge=1)
    #: A curation run whose new bronze rows are at most this many runs Spark's operators and
    #: expressions interpreted instead of generating and compiling Java code for each query:
    #: on a few thousand rows the compiling costs more than it saves (100 new rows per entity:
    #: 0.87x the run's wall time, docs/BENCHMARKS.md). 0: always compile.
    curation_interpreted_max_rows: int = Field(default=40_000, ge=0)
    #: Where the landing job serves its Prometheus metrics (`/metrics`); port 0: nowhere.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=8011, ge=0, le=65535)


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
        """The URI of the gold table fed by `entity` (see `dataplatform.products`)."""
        return self.uri(product_of(entity).gold_table, scheme=scheme)

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


# --------------------------------------------------------------------------- maintenance

#: Delta's own default: readers and writers running longer than this (a long query, a
#: stalled streaming batch) may still need files a shorter vacuum would delete.
MIN_RETENTION_HOURS = 168


class RetentionGuardError(ValueError):
    """VACUUM asked to keep less history than is safe, without `--force`."""


def check_retention(table: str, retention_hours: float, *, force: bool) -> None:
    """Refuse a VACUUM retention below `MIN_RETENTION_HOURS` unless forced.

    Raises:
        RetentionGuardError: `retention_hours` < 168 without `force`: a shorter retention can
            delete files that a running reader, the streaming landing job or a time-travel
            query (`restore`) still needs, and breaks restoring to versions older than it.
    """
    if retention_hours < MIN_RETENTION_HOURS and not force:
        raise RetentionGuardError(
            f"refusing to vacuum {table} with a retention of {retention_hours:g} h: below "
            f"{MIN_RETENTION_HOURS} h (7 days) a concurrent reader or the streaming landing job "
            "can lose files it is reading, and versions older than the retention can no longer "
            "be restored or time-travelled to. Pass --force if you accept that."
        )
