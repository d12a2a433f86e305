"""Curation: bronze -> silver (MERGE on the record key) -> gold, incremental and idempotent.

A batch job, run by Airflow or by hand:

    spark-submit pyspark_jobs/curation.py --entity finance/transactions --run-id <id>

Per entity it reads only the bronze versions no earlier run has processed (the change data
feed between the last processed version, recorded in `_state/curation_runs`, and the current
one), then:

1. re-checks every payload against the contract (exact decimals) and parses it into typed
   columns (failures go to `quarantine/curation/...`, stage `curation`);
2. enriches the rows of products declared with `fx` (transactions) with minor units and FX
   rates read from Postgres over JDBC;
3. evaluates the entity's expectations on every version (warn / drop to quarantine, stage
   `expectation` / fail the run) and records the results in `_quality/expectation_results`;
4. keeps, per key, the latest *valid* version: the greatest (event time, order token
   `(source_epoch, source_offset)`), among versions no `drop` expectation refused;
5. MERGEs into silver, updating a key only when the incoming version is newer by the same
   order, so replaying a batch changes nothing;
6. recomputes the gold aggregates of every day changed in silver since the last run whose gold
   step finished (the days rows moved to and away from), reading silver as of this run's MERGE;
7. records the processed bronze version range and the silver version gold is complete for,
   only after gold succeeded: a run that fails in the gold step is redone in full by the
   next run, which finds the days of the earlier MERGE in the change feed;
8. reports the bronze version it processed through to the ingest schema
   (`curation_progress`, bookkeeping), from which `GET /ingest/{id}` answers `curated`, and in
   the same transaction the ingest ids and reasons of the records it quarantined
   (`quarantined_records`), whose receipts say so instead.

A run with no new bronze version writes nothing: every table keeps its version, and `main`
finds that with delta-rs before starting Spark (`skip_without_spark`), so a run with nothing new
for any entity starts no JVM. Every entity of a run shares one Spark session. The code
follows the steps: `read_bronze_changes` -> `curate_batch` (pure DataFrame transforms, 1-4)
-> `write_quarantine`, `write_silver`, `write_gold`, `write_state` (5-7).

Exit codes: 0 done, 1 error, 3 a `fail` expectation was not met, 4 an incompatible schema
change (the message names the column and what to do).
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from dataplatform.contracts import Entity
from dataplatform.db.progress import ProgressWriter
from dataplatform.lake import (
    CURATION_STATE_TABLE,
    Lake,
    get_lakehouse_settings,
    quarantine_path,
    select_entities,
)
from dataplatform.lineage import JobRun, LineageEmitter, ParentRun, gold_table
from dataplatform.products import product_of
from dataplatform.settings import PostgresSettings, ReceiptSettings, get_postgres_settings
from dataplatform.shutdown import exit_now
from pyspark_jobs import quality, transforms
from pyspark_jobs.delta_tables import SchemaEvolutionError, append_rows, evolve_schema
from pyspark_jobs.launch import start_job_session
from pyspark_jobs.lineage import add_lineage_args, gold_run, silver_run
from pyspark_jobs.quality import Expectation, ExpectationFailedError, load_expectations
from pyspark_jobs.schemas import gold_schema
from pyspark_jobs.tables import STATE_SCHEMA, ensure_curation_tables, ensure_landing_tables

logger = logging.getLogger("pyspark_jobs.curation")

__all__ = ["SchemaEvolutionError", "curate_entity", "evolve_schema", "main"]


@dataclass(frozen=True)
class Reference:
    """Reference data for enrichment (from Postgres, or inline in tests)."""

    currencies: DataFrame
    fx_rates: DataFrame


@dataclass(frozen=True)
class CurationResult:
    """What one run did to one entity."""

    entity: str
    run_id: str
    bronze_version_from: int
    bronze_version_to: int
    rows_read: int
    rows_quarantined: int
    rows_merged: int
    affected_dates: int
    silver_version: int | None
    seconds: float

    @property
    def noop(self) -> bool:
        """True when there was nothing new in bronze."""
        return self.bronze_version_from > self.bronze_version_to


# --------------------------------------------------------------------------- read


def table_version(lake: Lake, table: str) -> int:
    """The latest version of a table (-1 if it does not exist)."""
    delta = lake.delta_rs(table)
    return delta.version() if delta is not None else -1


def _runs(lake: Lake, entity: Entity, columns: list[str]) -> list[dict[str, Any]]:
    """`columns` of the state rows of every finished run of `entity`."""
    delta = lake.delta_rs(CURATION_STATE_TABLE)
    if delta is None:
        return []
    name = f"{entity.domain}/{entity.name}"
    return delta.to_pyarrow_table(columns=columns, filters=[("entity", "=", name)]).to_pylist()


def _last_run(lake: Lake, entity: Entity) -> dict[str, Any] | None:
    """The state row of the last finished run of `entity`, if any."""
    runs = _runs(lake, entity, ["bronze_version_to", "silver_version", "finished_at"])
    return max(runs, key=lambda run: run["finished_at"]) if runs else None


def last_processed_version(lake: Lake, entity: Entity) -> int:
    """The last bronze version a finished run processed (-1 if none)."""
    run = _last_run(lake, entity)
    return int(run["bronze_version_to"]) if run else -1


def last_gold_silver_version(lake: Lake, entity: Entity) -> int | None:
    """The silver version gold was last completed for (None before the first run)."""
    run = _last_run(lake, entity)
    if run is None or run["silver_version"] is None:
        return None
    return int(run["silver_version"])


def _own_commit(lake: Lake, table: str, after: int, marker: str) -> tuple[int, dict[str, Any]]:
    """The version and operation metrics of the commit after `after` tagged `marker` (this
    run's MERGE), or `(-1, {})` when the MERGE committed nothing."""
    delta = lake.delta_rs(table)
    if delta is None:
        return -1, {}
    for commit in delta.history(max(delta.version() - after, 1)):
        if commit.get("userMetadata") == marker and int(commit.get("version", -1)) > after:
            return int(commit["version"]), dict(commit.get("operationMetrics") or {})
    return -1, {}


def read_bronze_changes(spark: SparkSession, uri: str, after: int, upto: int) -> DataFrame:
    """Rows appended to bronze in versions `after+1 .. upto`, with `_commit_version`.

    Uses the change data feed. A bronze table without it (created before the feed was turned
    on) is read whole at version `upto`: correct, because the MERGE is idempotent, only slower.
    """
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after + 1)
            .option("endingVersion", upto)
            .load(uri)
        )
        changes.schema  # noqa: B018 - resolves the plan now, so a missing feed raises here
    except AnalysisException as exc:
        logger.warning(
            "bronze %s has no change data feed for versions %d..%d (%s); reading it whole",
            uri,
            after + 1,
            upto,
            str(exc).splitlines()[0],
        )
        snapshot = spark.read.format("delta").option("versionAsOf", upto).load(uri)
        return snapshot.withColumn("_commit_version", F.lit(upto).cast("long"))
    return changes.where(F.col("_change_type") == "insert").drop(
        "_change_type", "_commit_timestamp"
    )


def read_reference(spark: SparkSession, postgres: PostgresSettings) -> Reference:
    """Currencies and FX rates from Postgres (schema `reference`) over JDBC."""
    properties = {
        "user": postgres.user,
        "password": postgres.password.get_secret_value(),
        "driver": "org.postgresql.Driver",
    }
    url = postgres.jdbc_url()
    currencies = spark.read.jdbc(url, "reference.currencies", properties=properties)
    fx_rates = spark.read.jdbc(url, "reference.fx_rates", properties=properties)
    return Reference(
        currencies=currencies.select(F.trim("code").alias("code"), "minor_units").cache(),
        fx_rates=fx_rates.select(
            F.trim("base_currency").alias("base_currency"),
            F.trim("quote_currency").alias("quote_currency"),
            F.col("rate").cast(DecimalType(20, 10)).alias("rate"),
            "valid_from",
        ).cache(),
    )


# --------------------------------------------------------------------------- transform


@dataclass(frozen=True)
class CuratedBatch:
    """One batch of bronze changes, curated: DataFrames only, no table read or written yet.

    `checked` and `flagged` are persisted (each is read several times: counts, expectations,
    quarantine, MERGE); `unpersist` releases them.

    Attributes:
        checked: The bronze rows with the contract check's result; `rows_read` counts them.
        flagged: The rows that passed, typed, enriched and flagged with the expectations they
            fail (`quality.FAILED_COLUMN`): what the expectations are evaluated on.
        quarantine: The rows the contract refused (stage `curation`) and those a `drop`
            expectation refused (stage `expectation`), in the quarantine layout.
        latest: Per key, the latest version no `drop` expectation refused: what is MERGEd.
    """

    checked: DataFrame
    flagged: DataFrame
    quarantine: DataFrame
    latest: DataFrame

    def unpersist(self) -> None:
        """Release the persisted DataFrames."""
        self.flagged.unpersist()
        self.checked.unpersist()


def _enrich(
    rows: DataFrame, entity: Entity, reference: Reference, reporting_currency: str
) -> DataFrame:
    if not product_of(entity).fx:
        return rows
    units = reference.currencies.where(F.col("code") == reporting_currency).first()
    if units is None:
        raise ValueError(
            f"reporting currency {reporting_currency} is not in reference.currencies: "
            "seed the reference data (dataplatform.reference.seed_reference_data)"
        )
    return rows.transform(
        transforms.with_fx,
        reference.currencies,
        reference.fx_rates,
        reporting_currency=reporting_currency,
        reporting_minor_units=int(units["minor_units"]),
    )


def curate_batch(
    changes: DataFrame,
    entity: Entity,
    *,
    run_id: str,
    reference: Reference,
    expectations: Sequence[Expectation],
    reporting_currency: str,
) -> CuratedBatch:
    """Bronze changes -> what goes to silver and what goes to quarantine.

    Checks every payload against the contract and parses it into typed columns, enriches the
    rows (FX, for products with `fx`), flags the expectations each row fails and picks, per
    key, the latest valid version. Expectations judge every version before the latest is
    picked: a newer version that a `drop` expectation refuses must not hide an older valid one.

    Args:
        changes: Output of `read_bronze_changes`.
        entity: Whose contract, product and key apply.
        run_id: This run's id, recorded on silver and quarantine rows.
        reference: Currencies and FX rates.
        expectations: The entity's expectations.
        reporting_currency: The currency amounts are converted to.

    Raises:
        ValueError: `reporting_currency` is not in the reference currencies.
    """
    checked = changes.transform(transforms.bronze_to_checked, entity).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    flagged = (
        checked.transform(transforms.parse_checked, entity, run_id=run_id)
        .transform(_enrich, entity, reference, reporting_currency)
        .transform(quality.flag_expectations, expectations)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    drop_names = quality.drop_names(expectations)
    dropped = transforms.to_quarantine(
        flagged.where(quality.failing(flagged, drop_names)),
        stage="expectation",
        reason=quality.drop_reason(drop_names),
        run_id=run_id,
        key_column=entity.key_field,
    )
    refused = transforms.to_quarantine(checked, stage="curation", run_id=run_id)
    return CuratedBatch(
        checked=checked,
        flagged=flagged,
        quarantine=refused.unionByName(dropped),
        latest=transforms.latest_valid_per_key(flagged, entity, drop_names),
    )


# --------------------------------------------------------------------------- write


def write_quarantine(
    spark: SparkSession, lake: Lake, entity: Entity, rows: DataFrame
) -> list[tuple[str | None, str]]:
    """Insert quarantine rows not already there (reruns of a batch add nothing).

    Returns:
        `(ingest id, reason)` of every row the batch quarantined (inserted now or by an
        earlier run), for the receipts (`report_progress`).
    """
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        refused = [
            (row.ingest_id, row.reason) for row in rows.select("ingest_id", "reason").collect()
        ]
        if refused:
            (
                DeltaTable.forPath(spark, lake.quarantine(entity, "curation"))
                .alias("q")
                .merge(rows.alias("n"), "q.quarantine_id = n.quarantine_id")
                .whenNotMatchedInsertAll()
                .execute()
            )
    finally:
        rows.unpersist()
    return refused


#: Spark conf whose value Delta records as the next commits' `userMetadata`.
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def _merge_silver(
    spark: SparkSession, uri: str, entity: Entity, batch: DataFrame, *, marker: str
) -> None:
    """MERGE `batch` into silver, tagging the commit with `marker` (its `userMetadata`), so
    the run finds its own commit in the history whatever else committed after it."""
    columns = [f.name for f in transforms.silver_schema(entity).fields]
    assignments: dict[str, str | Column] = {name: f"s.`{name}`" for name in columns}
    spark.conf.set(_USER_METADATA, marker)
    try:
        (
            DeltaTable.forPath(spark, uri)
            .alias("t")
            .merge(batch.alias("s"), f"t.`{entity.key_field}` = s.`{entity.key_field}`")
            .whenMatchedUpdate(condition=transforms.newer_than(entity), set=assignments)
            .whenNotMatchedInsert(values=assignments)
            .execute()
        )
    finally:
        spark.conf.unset(_USER_METADATA)


@dataclass(frozen=True)
class SilverMerge:
    """What one run's MERGE did to silver."""

    #: The run's MERGE commit, or the version the run saw when the MERGE committed nothing.
    version: int
    rows_merged: int
    seconds: float


def write_silver(
    spark: SparkSession, lake: Lake, entity: Entity, latest: DataFrame, *, run_id: str
) -> SilverMerge:
    """MERGE the latest versions into silver, updating a key only when the incoming version
    is newer (so replaying a batch changes nothing)."""
    table = entity.table_path("silver")
    version_before = table_version(lake, table)
    marker = f"curation:{run_id}:{uuid.uuid4()}"
    started = time.monotonic()
    _merge_silver(spark, lake.table("silver", entity), entity, latest, marker=marker)
    seconds = time.monotonic() - started
    merge_version, metrics = _own_commit(lake, table, version_before, marker)
    return SilverMerge(
        version=merge_version if merge_version >= 0 else version_before,
        rows_merged=int(metrics.get("numSourceRows", 0)),
        seconds=seconds,
    )


def changed_dates(spark: SparkSession, uri: str, first: int, last: int) -> list[date]:
    """Days whose gold rows can change: every event date in the change feed of silver
    versions `first..last`, before (pre-image) and after each change, so a record moved to
    another day updates both days."""
    if last < first:
        return []
    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", first)
        .option("endingVersion", last)
        .load(uri)
    )
    dates = changes.select("event_date").distinct().collect()
    return sorted(row["event_date"] for row in dates if row["event_date"] is not None)


def recompute_gold(
    spark: SparkSession,
    lake: Lake,
    entity: Entity,
    days: Sequence[date],
    *,
    silver_version: int | None = None,
) -> int:
    """Replace the gold rows of `days` with aggregates recomputed from silver (as of
    `silver_version`, by default the latest).

    Returns:
        The gold rows written (from the commit's metrics: no extra Spark job).
    """
    if not days:
        return 0
    reader = spark.read.format("delta")
    if silver_version is not None:
        reader = reader.option("versionAsOf", silver_version)
    silver = reader.load(lake.table("silver", entity))
    listed = ", ".join(f"DATE'{day.isoformat()}'" for day in days)
    predicate = f"event_date IN ({listed})"
    product = product_of(entity)
    aggregates = silver.where(predicate).transform(transforms.GOLD_TRANSFORMS[product.gold])
    schema = gold_schema(product)
    # The rows are computed from the same predicate, so Delta's extra pass checking that
    # every written row matches `replaceWhere` would only cost time.
    spark.conf.set("spark.databricks.delta.replaceWhere.constraintCheck.enabled", "false")
    (
        aggregates.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .save(lake.gold(entity))
    )
    # Curation is gold's only writer, so the latest commit is this one.
    gold = lake.delta_rs(gold_table(entity))
    metrics = (gold.history(1)[0].get("operationMetrics") or {}) if gold is not None else {}
    return int(metrics.get("numOutputRows", 0))


@dataclass(frozen=True)
class GoldWrite:
    """What `write_gold` did."""

    #: The first silver version whose changes were read.
    first_silver_version: int
    #: The event dates recomputed.
    days: list[date]
    #: Gold rows written.
    rows: int


def write_gold(
    spark: SparkSession, lake: Lake, entity: Entity, *, silver_version: int
) -> GoldWrite:
    """Bring gold up to `silver_version`: recompute the days changed in silver since the last
    version gold was completed for (which includes the MERGE of an earlier run whose gold step
    failed)."""
    table = entity.table_path("silver")
    gold_done = last_gold_silver_version(lake, entity)
    first = gold_done + 1 if gold_done is not None else _first_feed_version(lake, table)
    days = changed_dates(spark, lake.table("silver", entity), first, silver_version)
    rows = recompute_gold(spark, lake, entity, days, silver_version=silver_version)
    return GoldWrite(first, days, rows)


def write_state(lake: Lake, result: CurationResult, *, silver_version_from: int) -> None:
    """Record a finished run in `_state/curation_runs`: the next run starts after its
    bronze versions, and gold is complete for its silver version (one row, with delta-rs
    under the table's commit lock)."""
    row = (
        result.entity,
        result.run_id,
        result.bronze_version_from,
        result.bronze_version_to,
        result.rows_read,
        result.rows_quarantined,
        result.rows_merged,
        result.silver_version,
        datetime.now(UTC),
        silver_version_from,
    )
    append_rows(lake, CURATION_STATE_TABLE, STATE_SCHEMA, [row])


def quarantine_start(runs: Sequence[dict[str, Any]], reported: int) -> datetime | None:
    """From when curation's quarantine rows can belong to bronze versions after `reported`:
    the finish of the last run that processed no version past it (None: from the start).

    Runs of an entity follow one another and each processes through bronze's current version,
    so a run that processed versions after `reported`, and its quarantine rows, came after that
    one. Rows of earlier versions quarantined since (a rerun with `--from-bronze-version`) are
    included too, which is harmless: they were quarantined.

    Args:
        runs: `bronze_version_to` and `finished_at` of the entity's finished runs.
        reported: The last bronze version reported to the receipts.
    """
    done = [run["finished_at"] for run in runs if run["bronze_version_to"] <= reported]
    return max(done) if done else None


def quarantined_since(lake: Lake, entity: Entity, reported: int) -> list[tuple[str, str]]:
    """`(ingest id, reason)` of the records curation quarantined in the bronze versions after
    `reported` (see `quarantine_start`), read with delta-rs (no Spark)."""
    table = lake.delta_rs(quarantine_path(entity, "curation"))
    if table is None:
        return []
    rows = table.to_pyarrow_table(columns=["ingest_id", "reason", "quarantined_at"])
    since = quarantine_start(_runs(lake, entity, ["bronze_version_to", "finished_at"]), reported)
    if since is not None:
        at = rows["quarantined_at"]
        rows = rows.filter(pc.greater_equal(at, pa.scalar(since, type=at.type)))
    return [
        (row["ingest_id"], row["reason"])
        for row in rows.select(["ingest_id", "reason"]).to_pylist()
        if row["ingest_id"] is not None
    ]


def report_progress(
    progress: ProgressWriter | None,
    lake: Lake,
    entity: Entity,
    bronze_version: int,
    *,
    processed_before: int,
    quarantined: Sequence[tuple[str | None, str]] = (),
) -> None:
    """Tell the receipts that bronze is curated up to `bronze_version`, and which records the
    run quarantined, in one transaction (after the state row: a run that failed reports
    nothing).

    A report is bookkeeping, skipped while PostgreSQL is down, so each report first asks which
    version was reported last: when that is older than `processed_before`, the report also
    records the records quarantined in the versions after it (`quarantined_since`), and a
    receipt never says `curated` of one of them. A no-op run reports the last processed version
    again, so a missed report is made up by the next run even when bronze has nothing new.

    Args:
        progress: Where to report (None: not reported).
        lake: Where the tables are.
        entity: Whose bronze table.
        bronze_version: Every version up to this one is processed.
        processed_before: The last version earlier runs processed.
        quarantined: `(ingest id, reason)` of the records this run quarantined.
    """
    if progress is None or bronze_version < 0:
        return
    bronze_table = lake.table("bronze", entity, scheme="s3")
    reported = progress.last_curated(bronze_table)
    if reported is None:  # PostgreSQL is down (logged): a later run reports
        return
    refused = {ingest_id: reason for ingest_id, reason in quarantined if ingest_id is not None}
    if reported < processed_before:
        refused.update(quarantined_since(lake, entity, reported))
    progress.curated(
        bronze_table=bronze_table,
        entity=f"{entity.domain}.{entity.name}",
        bronze_version=bronze_version,
        quarantined=list(refused.items()),
    )


# --------------------------------------------------------------------------- one run


def curate_entity(
    spark: SparkSession,
    lake: Lake,
    entity: Entity,
    *,
    run_id: str,
    reference: Reference,
    expectations: Sequence[Expectation],
    reporting_currency: str | None = None,
    from_bronze_version: int | None = None,
    progress: ProgressWriter | None = None,
    lineage: LineageEmitter | None = None,
    lineage_parent: ParentRun | None = None,
    lineage_root: ParentRun | None = None,
) -> CurationResult:
    """Curate the bronze versions of `entity` no run has processed yet.

    Reads the new bronze versions (`read_bronze_changes`), curates them (`curate_batch`) and
    writes the expectation results, quarantine, silver, gold and the run's state, in that
    order: the state is written only once gold succeeded.

    With `lineage`, the two steps are OpenLineage runs: `curation.<domain>.<entity>.silver`
    (bronze -> silver and quarantine) and `curation.<domain>.<entity>.gold` (silver -> gold),
    each a child of `lineage_parent` (the Airflow task run) when given.

    Args:
        spark: The session.
        lake: Where the tables are.
        entity: What to curate.
        run_id: This run's id (Airflow's run id): recorded on silver rows and results.
        reference: Currencies and FX rates.
        expectations: The entity's expectations.
        reporting_currency: Defaults to `LAKEHOUSE_REPORTING_CURRENCY`.
        from_bronze_version: Reprocess from this bronze version instead of after the last
            processed one (after a `restore`, to re-curate with fixed code).
        progress: Where the processed bronze version is reported for the receipts (None:
            not reported).
        lineage: Where the OpenLineage events go (None: no events).
        lineage_parent: The run that started this one (an Airflow task run).
        lineage_root: The root of `lineage_parent`'s hierarchy (the DAG run).

    Returns:
        What the run did.

    Raises:
        ExpectationFailedError: A `fail` expectation was not met; nothing was merged and the
            processed versions did not advance.
        SchemaEvolutionError: The contract changed incompatibly with silver.
    """
    emitter = lineage or LineageEmitter.disabled()
    steps = (
        silver_run(emitter, lake, entity, parent=lineage_parent, root=lineage_root),
        gold_run(
            emitter,
            lake,
            entity,
            gold_schema(product_of(entity)),
            parent=lineage_parent,
            root=lineage_root,
        ),
    )
    try:
        return _curate_entity(
            spark,
            lake,
            entity,
            run_id=run_id,
            reference=reference,
            expectations=expectations,
            reporting_currency=reporting_currency,
            from_bronze_version=from_bronze_version,
            progress=progress,
            steps=steps,
        )
    except BaseException as exc:
        for step in steps:
            if step.state == "START":
                step.fail(exc)
        raise


def pending_bronze_versions(
    lake: Lake, entity: Entity, from_bronze_version: int | None = None
) -> tuple[int, int]:
    """The bronze versions a run of `entity` has to curate, `(after, upto)`: versions
    `after+1 .. upto`, none when `upto <= after`. Spark-free (delta-rs reads the logs).

    Args:
        lake: Where the tables are.
        entity: Whose bronze table.
        from_bronze_version: Reprocess from this version instead of after the last processed
            one.
    """
    upto = table_version(lake, entity.table_path("bronze"))
    after = (
        from_bronze_version - 1
        if from_bronze_version is not None
        else last_processed_version(lake, entity)
    )
    return after, upto


#: Commit metrics holding the rows an append added: Spark's (landing) and delta-rs's (the lake
#: exporter, `append_rows`).
_ADDED_ROWS_METRICS = ("numOutputRows", "num_added_rows")

#: The most bronze commits whose metrics `new_bronze_rows` reads (one object read each); a run
#: with more new commits than this is treated as large.
_MAX_COUNTED_COMMITS = 200


def new_bronze_rows(lake: Lake, entity: Entity, after: int, upto: int) -> int | None:
    """Rows appended to bronze in versions `after+1 .. upto` (`pending_bronze_versions`), from
    the commits' metrics with delta-rs (no Spark); None when unknown (no run yet, a commit
    without metrics, or more than `_MAX_COUNTED_COMMITS` new commits)."""
    if after < 0:
        return None
    if upto <= after:
        return 0
    if upto - after > _MAX_COUNTED_COMMITS:
        return None
    delta = lake.delta_rs(entity.table_path("bronze"))
    if delta is None:
        return None
    commits = [c for c in delta.history(upto - after) if after < int(c.get("version", -1)) <= upto]
    if len(commits) != upto - after:
        return None
    rows = 0
    for commit in commits:
        metrics = commit.get("operationMetrics") or {}
        added = next((metrics[name] for name in _ADDED_ROWS_METRICS if name in metrics), None)
        if added is None:
            return None
        rows += int(added)
    return rows


#: Spark conf of a small run: operators and expressions interpreted, no generated code; one
#: task per shuffle and per Delta state rebuild (a few thousand rows need no more, and the MERGE
#: writes one file).
INTERPRETED_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.shuffle.partitions": "1",
    "spark.databricks.delta.snapshotPartitions": "1",
}


def session_conf_for(
    new_rows: Sequence[int | None], *, reprocessing: bool, max_rows: int
) -> dict[str, str]:
    """The Spark conf a run adds: `INTERPRETED_CONF` when the new bronze rows of its entities
    (`new_bronze_rows`) are known and at most `max_rows`
    (`LAKEHOUSE_CURATION_INTERPRETED_MAX_ROWS`); a first-ever Java code generation and compile
    for each of a run's few dozen queries costs a small run more than the generated code saves
    it. Reprocessing (`--from-bronze-version`) compiles."""
    if reprocessing or max_rows <= 0 or None in new_rows:
        return {}
    total = sum(rows for rows in new_rows if rows is not None)
    if total > max_rows:
        return {}
    logger.info("%d new bronze rows: Spark runs interpreted (no code generation)", total)
    return dict(INTERPRETED_CONF)


def _nothing_new(
    entity: Entity, run_id: str, after: int, upto: int, silver_step: JobRun
) -> CurationResult:
    """The result of a run that found no new bronze version: its lineage run completes with
    zero rows moved, and no table is written."""
    name = f"{entity.domain}/{entity.name}"
    logger.info("%s: bronze is at version %d, already curated; nothing to do", name, upto)
    silver_step.complete({ref.name: 0 for ref in (*silver_step.inputs, *silver_step.outputs)})
    return CurationResult(name, run_id, after + 1, upto, 0, 0, 0, 0, None, 0.0)


def skip_without_spark(
    lake: Lake,
    entity: Entity,
    *,
    run_id: str,
    progress: ProgressWriter | None = None,
    lineage: LineageEmitter | None = None,
    lineage_parent: ParentRun | None = None,
    lineage_root: ParentRun | None = None,
    versions: tuple[int, int] | None = None,
) -> CurationResult | None:
    """Finish the run of `entity` without Spark when bronze has no version a finished run has
    not processed; None when there is work (or no run has finished yet: the first one creates
    the tables, which needs Spark).

    Reads only the Delta logs of bronze and of the state table with delta-rs (or takes
    `versions`, their `pending_bronze_versions` the caller already read), so a scheduled run
    with nothing new costs no JVM. The lineage is that of `curate_entity`'s no-op run.
    """
    after, upto = versions or pending_bronze_versions(lake, entity)
    if after < 0 or upto > after:
        return None
    step = silver_run(
        lineage or LineageEmitter.disabled(),
        lake,
        entity,
        parent=lineage_parent,
        root=lineage_root,
    )
    step.start()
    report_progress(progress, lake, entity, after, processed_before=after)
    return _nothing_new(entity, run_id, after, upto, step)


def _curate_entity(
    spark: SparkSession,
    lake: Lake,
    entity: Entity,
    *,
    run_id: str,
    reference: Reference,
    expectations: Sequence[Expectation],
    reporting_currency: str | None,
    from_bronze_version: int | None,
    progress: ProgressWriter | None,
    steps: tuple[JobRun, JobRun],
) -> CurationResult:
    """`curate_entity` without the lineage bookkeeping of failures."""
    silver_step, gold_step = steps
    silver_step.start()
    started = time.monotonic()
    name = f"{entity.domain}/{entity.name}"
    ensure_landing_tables(spark, lake, entity)
    ensure_curation_tables(spark, lake, entity)
    after, upto = pending_bronze_versions(lake, entity, from_bronze_version)
    if upto <= after:
        report_progress(progress, lake, entity, after, processed_before=after)
        return _nothing_new(entity, run_id, after, upto, silver_step)

    batch = curate_batch(
        read_bronze_changes(spark, lake.table("bronze", entity), after, upto),
        entity,
        run_id=run_id,
        reference=reference,
        expectations=expectations,
        reporting_currency=reporting_currency or _reporting_currency(),
    )
    try:
        rows_read = batch.checked.count()
        quality.judge(
            spark,
            lake,
            batch.flagged,
            expectations,
            run_id=run_id,
            job="curation",
            table=entity.table_path("silver"),
        )
        quarantined = write_quarantine(spark, lake, entity, batch.quarantine)
        merge = write_silver(spark, lake, entity, batch.latest, run_id=run_id)
        silver_step.complete(
            {
                lake.relative(entity.table_path("bronze")): rows_read,
                lake.relative(entity.table_path("silver")): merge.rows_merged,
                lake.relative(quarantine_path(entity, "curation")): len(quarantined),
            }
        )
        gold_step.start()
        gold = write_gold(spark, lake, entity, silver_version=merge.version)
    finally:
        batch.unpersist()

    result = CurationResult(
        name,
        run_id,
        after + 1,
        upto,
        rows_read,
        len(quarantined),
        merge.rows_merged,
        len(gold.days),
        merge.version,
        time.monotonic() - started,
    )
    write_state(lake, result, silver_version_from=gold.first_silver_version)
    report_progress(progress, lake, entity, upto, processed_before=after, quarantined=quarantined)
    gold_step.complete({lake.relative(gold_table(entity)): gold.rows})
    logger.info(
        "%s: curated bronze versions %d..%d: %d rows read, %d quarantined, %d merged "
        "(MERGE %.1f s), %d gold days recomputed, silver at version %s, %.1f s in all",
        name,
        after + 1,
        upto,
        rows_read,
        result.rows_quarantined,
        result.rows_merged,
        merge.seconds,
        len(gold.days),
        result.silver_version,
        result.seconds,
        extra={"run_id": run_id, "entity": name},
    )
    return result


def _first_feed_version(lake: Lake, table: str) -> int:
    """The first silver version to read changes from when no run has completed gold yet: the
    one after the table's creation (the change feed is on from its first commit)."""
    delta = lake.delta_rs(table)
    if delta is None:
        return 0
    history = delta.history()
    created = [int(c["version"]) for c in history if c.get("operation") == "CREATE TABLE"]
    return (max(created) + 1) if created else 0


def _reporting_currency() -> str:
    return get_lakehouse_settings().reporting_currency


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The curation job's command line."""
    parser = argparse.ArgumentParser(
        prog="curation", description="bronze -> silver (MERGE) -> gold, incremental."
    )
    parser.add_argument("--entity", action="append", help="<domain>/<entity>, repeatable")
    parser.add_argument(
        "--run-id",
        default=None,
        help="id recorded on rows and results (Airflow's run id); default manual-<UTC time>",
    )
    parser.add_argument("--lake-prefix", help="folder in the bucket holding the tables")
    parser.add_argument("--expectations-dir", type=Path, help="default: the packaged files")
    parser.add_argument("--reporting-currency", help="default LAKEHOUSE_REPORTING_CURRENCY")
    parser.add_argument(
        "--from-bronze-version",
        type=int,
        help="reprocess bronze from this version (after a restore of silver)",
    )
    add_lineage_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `spark-submit pyspark_jobs/curation.py` and `dataplatform run curation`.

    Returns:
        0 done, 1 error, 3 a `fail` expectation not met, 4 incompatible schema change.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_id = args.run_id or f"manual-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    lineage = None
    progress = None
    try:
        progress = ProgressWriter(get_postgres_settings(), ReceiptSettings().db_schema)
        lake = Lake.load(prefix=args.lake_prefix)
        lineage = LineageEmitter.from_settings(lake)
        pending = select_entities(args.entity)
        new_rows: list[int | None] = []
        if args.from_bronze_version is None:
            # Only the entities with new bronze versions need Spark; with none, no JVM starts.
            waiting = []
            for entity in pending:
                versions = pending_bronze_versions(lake, entity)
                skipped = skip_without_spark(
                    lake,
                    entity,
                    run_id=run_id,
                    progress=progress,
                    lineage=lineage,
                    lineage_parent=args.lineage_parent,
                    lineage_root=args.lineage_root,
                    versions=versions,
                )
                if skipped is None:
                    waiting.append(entity)
                    new_rows.append(new_bronze_rows(lake, entity, *versions))
            pending = waiting
        if not pending:
            return 0
        spark = start_job_session(
            "curation",
            batch=True,
            extra_conf=session_conf_for(
                new_rows,
                reprocessing=args.from_bronze_version is not None,
                max_rows=get_lakehouse_settings().curation_interpreted_max_rows,
            ),
        )
        reference = read_reference(spark, get_postgres_settings())
        for entity in pending:
            curate_entity(
                spark,
                lake,
                entity,
                run_id=run_id,
                reference=reference,
                expectations=load_expectations(entity, args.expectations_dir),
                reporting_currency=args.reporting_currency,
                from_bronze_version=args.from_bronze_version,
                progress=progress,
                lineage=lineage,
                lineage_parent=args.lineage_parent,
                lineage_root=args.lineage_root,
            )
    except ExpectationFailedError as exc:
        logger.error("curation run %s stopped: %s", run_id, exc)
        return 3
    except SchemaEvolutionError as exc:
        logger.error("curation run %s stopped: %s", run_id, exc)
        return 4
    except Exception:
        logger.exception("curation run %s failed", run_id)
        return 1
    finally:
        if progress is not None:
            progress.close()
        if lineage is not None:
            lineage.close()
    return 0


if __name__ == "__main__":
    exit_now(main())
