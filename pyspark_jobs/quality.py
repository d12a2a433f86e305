"""Data-quality expectations: declared as data, evaluated on Spark, results kept in Delta.

Expectations live next to the contracts, one YAML file per entity
(`src/dataplatform/contracts/expectations/<domain>_<entity>.yaml`): a name, a description, a
Spark SQL condition every row should meet, and an action for rows that do not: `warn` (count
them), `drop` (quarantine them; curation only) or `fail` (stop the run).

The curation job evaluates them on each batch before merging it. This module's `main` is the
standalone check of what a run wrote to silver:

    spark-submit pyspark_jobs/quality.py --entity finance/transactions --run-id <id> \
        [--curation-run-id <id of the curation run>]

It checks the whole silver table, or only the rows one curation run wrote, writes one result
row per expectation to `_quality/expectation_results` under `--run-id`, and exits with 1,
naming each failed expectation, when a `fail` expectation is not met.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from dataplatform.contracts import Entity
from dataplatform.lake import EXPECTATION_RESULTS_TABLE, Lake, select_entities
from dataplatform.shutdown import exit_now
from pyspark_jobs.delta_tables import append_rows, ensure_table
from pyspark_jobs.launch import start_job_session

logger = logging.getLogger("pyspark_jobs.quality")

#: Internal column: the names of the expectations a row failed.
FAILED_COLUMN = "_failed_expectations"

Action = Literal["warn", "drop", "fail"]
Outcome = Literal["pass", "warn", "drop", "fail"]

RESULTS_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), nullable=False),
        StructField("job", StringType(), nullable=False),
        StructField("table", StringType(), nullable=False),
        StructField("expectation", StringType(), nullable=False),
        StructField("action", StringType(), nullable=False),
        StructField("condition", StringType(), nullable=False),
        StructField("rows_evaluated", LongType(), nullable=False),
        StructField("rows_failed", LongType(), nullable=False),
        StructField("outcome", StringType(), nullable=False),
        StructField("evaluated_at", TimestampType(), nullable=False),
    ]
)


class Expectation(BaseModel):
    """One expectation of a table's rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    description: str
    #: Spark SQL boolean over the table's columns; true means the row meets it.
    condition: str = Field(min_length=1)
    action: Action


class ExpectationSuite(BaseModel):
    """The expectations of one table, as declared in its YAML file."""

    model_config = ConfigDict(extra="forbid")

    table: str
    expectations: list[Expectation]


class ExpectationFailedError(RuntimeError):
    """A `fail` expectation was not met; nothing of the batch was merged."""


@dataclass(frozen=True)
class ExpectationResult:
    """How many rows one expectation was evaluated on and how many failed it."""

    expectation: Expectation
    rows_evaluated: int
    rows_failed: int

    @property
    def outcome(self) -> Outcome:
        """`pass`, or the action taken on the failing rows."""
        return "pass" if self.rows_failed == 0 else self.expectation.action


def expectations_file(entity: Entity, directory: Path | None = None) -> Path:
    """`<directory>/<domain>_<entity>.yaml`; by default the packaged one beside the contracts."""
    name = f"{entity.domain}_{entity.name}.yaml"
    if directory is not None:
        return directory / name
    return Path(str(resources.files("dataplatform.contracts").joinpath("expectations", name)))


def load_expectations(entity: Entity, directory: Path | None = None) -> list[Expectation]:
    """Read and validate an entity's expectations.

    Raises:
        FileNotFoundError: The entity has no expectations file.
        pydantic.ValidationError: The file does not follow the format (message names the
            entry and field).
    """
    path = expectations_file(entity, directory)
    suite = ExpectationSuite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    names = [item.name for item in suite.expectations]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate expectation names {duplicates}")
    return suite.expectations


def flag_expectations(df: DataFrame, expectations: Sequence[Expectation]) -> DataFrame:
    """Add `_failed_expectations`: the names of the expectations each row fails.

    A condition that evaluates to null counts as failed: an expectation must say explicitly
    what it tolerates (e.g. `x IS NULL OR x > 0`).
    """
    failed = [
        F.when(~F.coalesce(F.expr(item.condition), F.lit(False)), F.lit(item.name))
        for item in expectations
    ]
    names = F.array(*failed) if failed else F.array().cast("array<string>")
    return df.withColumn(FAILED_COLUMN, F.filter(names, lambda name: name.isNotNull()))


def failing(df: DataFrame, names: Sequence[str]) -> Column:
    """True for rows of a flagged DataFrame that fail any of `names`."""
    if not names:
        return F.lit(False)
    return F.arrays_overlap(F.col(FAILED_COLUMN), F.array(*[F.lit(name) for name in names]))


def drop_names(expectations: Sequence[Expectation]) -> list[str]:
    """The names of the `drop` expectations: rows failing one go to quarantine."""
    return [item.name for item in expectations if item.action == "drop"]


def drop_reason(names: Sequence[str]) -> Column:
    """The quarantine reason of a flagged row failing some of the `drop` expectations `names`."""
    failed = F.filter(F.col(FAILED_COLUMN), lambda name: name.isin(list(names)))
    return F.concat(F.lit("failed expectation(s): "), F.array_join(failed, ", "))


def evaluate(flagged: DataFrame, expectations: Sequence[Expectation]) -> list[ExpectationResult]:
    """Count, in one pass, the rows of a flagged DataFrame failing each expectation.

    Args:
        flagged: Output of `flag_expectations`.
        expectations: The expectations it was flagged with.
    """
    failed = F.col(FAILED_COLUMN)
    aggregates = [F.count(F.lit(1)).alias("_total")] + [
        F.sum(F.array_contains(failed, item.name).cast("long")).alias(f"_e{index}")
        for index, item in enumerate(expectations)
    ]
    row = flagged.agg(*aggregates).first()
    total = int(row["_total"]) if row else 0
    return [
        ExpectationResult(item, total, int((row[f"_e{index}"] if row else 0) or 0))
        for index, item in enumerate(expectations)
    ]


def ensure_results_table(spark: SparkSession, lake: Lake) -> str:
    """Create `_quality/expectation_results` if missing; return its URI."""
    ensure_table(spark, lake, EXPECTATION_RESULTS_TABLE, RESULTS_SCHEMA)
    return lake.uri(EXPECTATION_RESULTS_TABLE)


def write_results(
    spark: SparkSession,
    lake: Lake,
    results: Sequence[ExpectationResult],
    *,
    run_id: str,
    job: str,
    table: str,
) -> None:
    """Append one row per expectation result to `_quality/expectation_results`."""
    if not results:
        return
    ensure_results_table(spark, lake)
    now = datetime.now(UTC)
    rows = [
        (
            run_id,
            job,
            table,
            result.expectation.name,
            result.expectation.action,
            result.expectation.condition,
            result.rows_evaluated,
            result.rows_failed,
            result.outcome,
            now,
        )
        for result in results
    ]
    append_rows(lake, EXPECTATION_RESULTS_TABLE, RESULTS_SCHEMA, rows)
    for result in results:
        level = logging.WARNING if result.outcome != "pass" else logging.INFO
        logger.log(
            level,
            "%s %s: %s (%d of %d rows failed)",
            table,
            result.expectation.name,
            result.outcome,
            result.rows_failed,
            result.rows_evaluated,
            extra={
                "run_id": run_id,
                "expectation": result.expectation.name,
                "outcome": result.outcome,
            },
        )


def failure_message(results: Sequence[ExpectationResult], *, table: str, run_id: str) -> str:
    """The message of an `ExpectationFailedError`: each failed expectation and why it exists."""
    failed = [result for result in results if result.outcome == "fail"]
    lines = [f"{len(failed)} fail expectation(s) not met on {table} in run {run_id}:"]
    lines += [
        f"- {r.expectation.name}: {r.rows_failed} of {r.rows_evaluated} rows fail "
        f"`{r.expectation.condition}` ({r.expectation.description})"
        for r in failed
    ]
    lines.append(
        "The results are in _quality/expectation_results; fix the data or the reference data "
        "it depends on, then rerun."
    )
    return "\n".join(lines)


def judge(
    spark: SparkSession,
    lake: Lake,
    flagged: DataFrame,
    expectations: Sequence[Expectation],
    *,
    run_id: str,
    job: str,
    table: str,
) -> list[ExpectationResult]:
    """Evaluate the expectations on flagged rows, record the results, stop on a `fail`.

    Args:
        spark: The session.
        lake: Where `_quality/expectation_results` is.
        flagged: Output of `flag_expectations`.
        expectations: The expectations it was flagged with.
        run_id: The id the results are recorded under.
        job: The job evaluating them (`curation`, `quality`).
        table: The table the rows are (or are going to) for messages and results.

    Returns:
        One result per expectation.

    Raises:
        ExpectationFailedError: A `fail` expectation was not met (results are written first).
    """
    results = evaluate(flagged, expectations)
    write_results(spark, lake, results, run_id=run_id, job=job, table=table)
    if any(result.outcome == "fail" for result in results):
        raise ExpectationFailedError(failure_message(results, table=table, run_id=run_id))
    return results


def check_silver(
    spark: SparkSession,
    lake: Lake,
    entity: Entity,
    *,
    run_id: str,
    expectations: Sequence[Expectation],
    curation_run_id: str | None = None,
) -> list[ExpectationResult]:
    """Evaluate expectations on silver (or the rows one curation run wrote); record results.

    `drop` expectations are reported like warnings here: the rows are already in silver, so
    a non-zero count means they were curated before the expectation existed.

    Args:
        spark: The session.
        lake: Where the tables are.
        entity: Whose silver table to check.
        run_id: The id the results are recorded under (the quality run's).
        expectations: What to check.
        curation_run_id: Check only the rows this curation run wrote.

    Returns:
        One result per expectation.

    Raises:
        ExpectationFailedError: A `fail` expectation was not met (results are written first).
    """
    silver = spark.read.format("delta").load(lake.table("silver", entity))
    if curation_run_id is not None:
        silver = silver.where(F.col("curation_run_id") == curation_run_id)
    return judge(
        spark,
        lake,
        silver.transform(flag_expectations, expectations),
        expectations,
        run_id=run_id,
        job="quality",
        table=entity.table_path("silver"),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The quality job's command line."""
    parser = argparse.ArgumentParser(prog="quality", description=__doc__.splitlines()[0])
    parser.add_argument("--entity", action="append", help="<domain>/<entity>, repeatable")
    parser.add_argument("--run-id", required=True, help="id the results are recorded under")
    parser.add_argument(
        "--curation-run-id", help="check only the rows this curation run wrote (default: all)"
    )
    parser.add_argument("--lake-prefix", help="folder in the bucket holding the tables")
    parser.add_argument("--expectations-dir", type=Path, help="default: the packaged files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `spark-submit pyspark_jobs/quality.py`.

    Returns:
        0 when no `fail` expectation is violated, 1 otherwise (the message names each).
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    spark = start_job_session("quality", batch=True)
    lake = Lake.load(prefix=args.lake_prefix)
    failed = False
    for entity in select_entities(args.entity):
        expectations = load_expectations(entity, args.expectations_dir)
        try:
            check_silver(
                spark,
                lake,
                entity,
                run_id=args.run_id,
                expectations=expectations,
                curation_run_id=args.curation_run_id,
            )
        except ExpectationFailedError as exc:
            logger.error("%s", exc)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    exit_now(main())
