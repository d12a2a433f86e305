"""Pure `DataFrame -> DataFrame` transforms of the landing and curation jobs.

Each function takes a DataFrame (and plain parameters) and returns a new one; none reads or
writes a table, so each is unit-tested on tiny inline DataFrames. Jobs chain them with
`DataFrame.transform`.

The contract check is the pydantic model itself (`check_record`), run in a Python UDF: it
decodes with `dataplatform.contracts.exactjson` (numbers from their text, a repeated key
refused), never pydantic's JSON mode, which reads numbers through floats. `contract_check`
lets the JVM judge the records it can judge exactly first (`pyspark_jobs.contract_sql`, Spark
SQL expressions generated from the same contracts, never Spark's JSON reader, which rounds
decimals and turns unparsable values into nulls) and sends only the rest to the UDF; landing
does not use it yet (`kafka_to_checked`'s `jvm_check`).

Versions of one record key are ordered by (event time, order token): see `recency_order`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from dataplatform.contracts import Entity, exactjson
from dataplatform.contracts.bronze import (
    BRONZE_COLUMNS,
    HEADER_INGEST_ID,
    HEADER_KEY_ID,
    HEADER_SOURCE_EPOCH,
    HEADER_SOURCE_OFFSET,
    HEADER_TOPIC_ID,
    HEADER_TRACEPARENT,
)
from dataplatform.ingest_ids import KAFKA_PREFIX, MAC_HEX_DIGITS
from dataplatform.products import product_of
from pyspark_jobs import contract_sql
from pyspark_jobs.quality import failing
from pyspark_jobs.schemas import SUM_TYPE, contract_schema

#: Internal column: the check's result.
CHECK_COLUMN = "_check"

#: What the contract check returns for one record.
CHECK_SCHEMA = StructType(
    [
        StructField("payload", StringType()),
        StructField("record_key", StringType()),
        StructField("normalized", StringType()),
        StructField("error", StringType()),
    ]
)

#: Quarantine table: one row per rejected record, with enough to understand and replay it.
QUARANTINE_SCHEMA = StructType(
    [
        StructField("quarantine_id", StringType(), nullable=False),
        StructField("stage", StringType(), nullable=False),
        StructField("reason", StringType(), nullable=False),
        StructField("payload", StringType(), nullable=True),
        StructField("record_key", StringType(), nullable=True),
        StructField("ingest_id", StringType(), nullable=True),
        StructField("kafka_topic", StringType(), nullable=True),
        StructField("kafka_partition", IntegerType(), nullable=True),
        StructField("kafka_offset", LongType(), nullable=True),
        StructField("run_id", StringType(), nullable=True),
        StructField("quarantined_at", TimestampType(), nullable=False),
        StructField("quarantine_date", DateType(), nullable=False),
        # The record's order token, kept so a replay puts it back in its place.
        StructField("source_epoch", LongType(), nullable=True),
        StructField("source_offset", LongType(), nullable=True),
    ]
)

#: Decimal of converted amounts: sums of up to 10^6 rows of the contract's 18 digits fit.
REPORTING_AMOUNT_TYPE = DecimalType(24, 6)

_MAX_REASON_CHARS = 2000


# --------------------------------------------------------------------------- contract check


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)[:_MAX_REASON_CHARS]


def check_record(
    model: type[BaseModel],
    key_field: str,
    key: bytes | None,
    value: bytes | None,
    *,
    normalize: bool,
) -> tuple[str | None, str | None, str | None, str | None]:
    """Check one record against its contract, the same way the ingestor does.

    Args:
        model: The pydantic contract.
        key_field: The contract's natural key field.
        key: The Kafka message key (the natural key, UTF-8), if any.
        value: The raw record bytes (UTF-8 JSON).
        normalize: Also return the record re-serialised by the contract (UTC timestamps,
            upper-case currency, decimals as strings with their exact digits), for typed
            parsing downstream (`from_json` reads a decimal string exactly).

    Returns:
        `(payload, record_key, normalized, error)`: the payload as text (base64 if it is not
        UTF-8, so quarantine keeps it byte for byte), the validated key, the normalised JSON,
        and the reason the record is refused (None when it is valid).
    """
    if value is None:
        return None, None, None, "empty message: no payload"
    try:
        payload = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        import base64

        encoded = "base64:" + base64.b64encode(bytes(value)).decode("ascii")
        return encoded, None, None, f"payload is not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        record = exactjson.validate(model, payload)
    except exactjson.ExactJsonError as exc:
        reason = f"record: {exc}" if exc.kind == "duplicate_key" else f"record: Invalid JSON: {exc}"
        return payload, None, None, reason[:_MAX_REASON_CHARS]
    except ValidationError as exc:
        return payload, None, None, _describe(exc)
    except Exception as exc:
        # A contract whose validator raises something else would otherwise fail the whole
        # micro-batch on every restart; the record belongs in quarantine with the reason.
        reason = f"record: the contract check raised {type(exc).__name__}: {exc}"
        return payload, None, None, reason[:_MAX_REASON_CHARS]
    record_key = str(getattr(record, key_field))
    if key is not None:
        message_key = bytes(key).decode("utf-8", errors="replace")
        if message_key != record_key:
            reason = f"Kafka key {message_key!r} does not match {key_field} {record_key!r}"
            return payload, record_key, None, reason
    normalized = record.model_dump_json() if normalize else None
    return payload, record_key, normalized, None


def contract_check_udf(entity: Entity, *, normalize: bool) -> Callable[..., Column]:
    """A Spark UDF `(key binary, value binary) -> CHECK_SCHEMA` running `check_record`."""
    model, key_field = entity.model, entity.key_field

    def check(key: bytes | None, value: bytes | None) -> tuple[Any, ...]:
        return check_record(model, key_field, key, value, normalize=normalize)

    return F.udf(check, CHECK_SCHEMA)


def contract_check(df: DataFrame, entity: Entity) -> DataFrame:
    """Kafka rows (`key`, `value` binary) plus the `_check` struct of `CHECK_SCHEMA`.

    The JVM judges the rows it can judge exactly as the contract would (`contract_sql`); only
    the others go through `check_record` in a Python UDF, which also checks every row of an
    entity whose contract `contract_sql` does not support. Both give the same payload, key
    and reason (tests/unit/test_contract_sql.py); `normalized` is not computed.
    """
    udf = contract_check_udf(entity, normalize=False)
    try:
        judged = df.transform(contract_sql.judge, entity)
    except contract_sql.UnsupportedContractError:
        return df.withColumn(CHECK_COLUMN, udf(F.col("key"), F.col("value")))
    decided = F.col(contract_sql.DECIDED_COLUMN)
    # Spark evaluates a Python UDF in a conditional for every row: the rows the JVM judged
    # reach it as nulls, which it answers without decoding anything.
    python = udf(F.when(~decided, F.col("key")), F.when(~decided, F.col("value")))
    check = F.when(decided, F.col(contract_sql.CHECK_COLUMN)).otherwise(python)
    return judged.withColumn(CHECK_COLUMN, check).drop(
        contract_sql.DECIDED_COLUMN, contract_sql.CHECK_COLUMN
    )


# --------------------------------------------------------------------------- landing


def _header(name: str) -> Column:
    """The first value of the Kafka header `name` as text (null when absent)."""
    found = F.filter("headers", lambda h: h["key"] == name)
    return F.element_at(found, 1)["value"].cast("string")


#: W3C `traceparent`: version, trace id, parent span id, flags (lower-case hex). The trace id
#: of all zeros is invalid.
_TRACEPARENT = r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$"


def trace_id_of(traceparent: Column) -> Column:
    """The trace id of a W3C `traceparent` value, or null when it is absent or malformed."""
    found = F.regexp_extract(traceparent, _TRACEPARENT, 1)
    return F.when((found != "") & (found != "0" * 32), found)


def hmac_sha256_hex(key: bytes, message: Column) -> Column:
    """HMAC-SHA256 (RFC 2104) of a text column as lower-case hex, in Spark SQL (no UDF)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner_pad = bytearray(b ^ 0x36 for b in key)
    outer_pad = bytearray(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), message.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def signed_kafka_id(receipt_secret: bytes) -> Column:
    """The ingest id the ingestor gave a Kafka record (`dataplatform.ingest_ids`), from its
    coordinates and the `topic_id`/`api_key_id` headers; null without those headers."""
    body = F.concat_ws(
        ".",
        F.lit(KAFKA_PREFIX),
        F.translate(_header(HEADER_TOPIC_ID), "+/", "-_"),  # as `url_safe_topic_id`
        F.col("partition"),
        F.col("offset"),
        F.unix_millis(F.col("timestamp")),
    )
    key_id = _header(HEADER_KEY_ID)
    signed = F.concat(
        body,
        F.lit("."),
        F.substring(
            hmac_sha256_hex(receipt_secret, F.concat(body, F.lit("."), key_id)),
            1,
            MAC_HEX_DIGITS,
        ),
    )
    return F.when(_header(HEADER_TOPIC_ID).isNotNull() & key_id.isNotNull(), signed)


def kafka_to_checked(
    df: DataFrame, entity: Entity, *, epoch: int, receipt_secret: bytes, jvm_check: bool = False
) -> DataFrame:
    """Kafka rows -> rows with ingest metadata, order token and the contract check's result.

    The ingest id is the one the ingestor answered with, computed from the record's
    coordinates and headers (`signed_kafka_id`); a record put back on a topic (`lake replay`,
    a Kafka restore) keeps its original id from its `ingest_id` header, and a message from
    something other than the ingestor gets a stable id from its coordinates, so a replayed
    micro-batch produces the same ids. The order token is `(epoch, offset)`, except for a
    record replayed from quarantine, which carries its original token in the
    `source_epoch`/`source_offset` headers and keeps it.

    Args:
        df: Rows of Spark's Kafka source with headers (`includeHeaders`).
        entity: The entity the topic carries.
        epoch: The topic's epoch (see `dataplatform.contracts.bronze`).
        receipt_secret: `RECEIPT_SECRET`, which signs ingest ids.
        jvm_check: Judge records in the JVM first (`contract_check`). Off in landing: it
            measured slower than the Python UDF (`contract_sql`; docs/BENCHMARKS.md).

    Returns:
        `ingest_id, kafka_topic, kafka_partition, kafka_offset, ingested_at, source_epoch,
        source_offset, trace_id` plus the `_check` struct of `CHECK_SCHEMA`.
    """
    coordinates = F.concat_ws(":", F.lit("kafka"), "topic", "partition", "offset")
    check = contract_check_udf(entity, normalize=False)
    if jvm_check:
        checked = df.transform(contract_check, entity)
    else:
        checked = df.withColumn(CHECK_COLUMN, check(F.col("key"), F.col("value")))
    replayed_epoch = _header(HEADER_SOURCE_EPOCH).cast("long")
    replayed_offset = _header(HEADER_SOURCE_OFFSET).cast("long")
    replayed = replayed_epoch.isNotNull() & replayed_offset.isNotNull()
    return checked.select(
        F.coalesce(_header(HEADER_INGEST_ID), signed_kafka_id(receipt_secret), coordinates).alias(
            "ingest_id"
        ),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").cast("int").alias("kafka_partition"),
        F.col("offset").cast("long").alias("kafka_offset"),
        # The Kafka timestamp is set when the ingestor's producer accepted the record.
        F.col("timestamp").alias("ingested_at"),
        F.when(replayed, replayed_epoch).otherwise(F.lit(epoch).cast("long")).alias("source_epoch"),
        F.when(replayed, replayed_offset)
        .otherwise(F.col("offset").cast("long"))
        .alias("source_offset"),
        trace_id_of(_header(HEADER_TRACEPARENT)).alias("trace_id"),
        F.col(CHECK_COLUMN),
    )


def to_bronze(df: DataFrame) -> DataFrame:
    """Checked rows that passed -> the bronze layout of `BRONZE_COLUMNS`, in order."""
    columns = {
        "ingest_id": F.col("ingest_id"),
        "record_key": F.col(f"{CHECK_COLUMN}.record_key"),
        "payload": F.col(f"{CHECK_COLUMN}.payload"),
        "source": F.lit("kafka"),
        "kafka_topic": F.col("kafka_topic"),
        "kafka_partition": F.col("kafka_partition"),
        "kafka_offset": F.col("kafka_offset"),
        "outbox_id": F.lit(None).cast("long"),
        "ingested_at": F.col("ingested_at"),
        "landed_at": F.current_timestamp(),
        "ingest_date": F.to_date("ingested_at"),
        "source_epoch": F.col("source_epoch"),
        "source_offset": F.col("source_offset"),
        "trace_id": F.col("trace_id"),
    }
    return df.where(F.col(f"{CHECK_COLUMN}.error").isNull()).select(
        *[columns[name].alias(name) for name, *_ in BRONZE_COLUMNS]
    )


def to_quarantine(
    df: DataFrame,
    *,
    stage: str,
    reason: Column | None = None,
    run_id: str | None = None,
    key_column: str = "record_key",
) -> DataFrame:
    """Rows refused at `stage` -> the quarantine layout (`QUARANTINE_SCHEMA`).

    Args:
        df: Rows with the ingest metadata columns. Without `reason`, only the rows whose
            contract check failed are kept and the check's error is the reason.
        stage: `landing`, `curation` or `expectation`.
        reason: The reason of every row of `df` (already filtered by the caller).
        run_id: The curation run that refused them, if any.
        key_column: The column holding the natural key when `df` has no `_check`.

    Returns:
        One row per refused record. `quarantine_id` is stable (stage + Kafka coordinates or
        ingest id), so writing the same rows twice can be made a no-op.
    """
    if reason is None:
        df = df.where(F.col(f"{CHECK_COLUMN}.error").isNotNull())
        reason = F.col(f"{CHECK_COLUMN}.error")
    has_kafka = F.col("kafka_topic").isNotNull()
    coordinates = F.concat_ws(":", "kafka_topic", "kafka_partition", "kafka_offset")
    payload = F.col(f"{CHECK_COLUMN}.payload") if CHECK_COLUMN in df.columns else F.col("payload")
    key = F.col(f"{CHECK_COLUMN}.record_key") if CHECK_COLUMN in df.columns else F.col(key_column)
    now = F.current_timestamp()
    return df.select(
        F.concat_ws(
            ":", F.lit(stage), F.when(has_kafka, coordinates).otherwise(F.col("ingest_id"))
        ).alias("quarantine_id"),
        F.lit(stage).alias("stage"),
        F.substring(reason, 1, _MAX_REASON_CHARS).alias("reason"),
        payload.alias("payload"),
        key.alias("record_key"),
        F.col("ingest_id"),
        F.col("kafka_topic"),
        F.col("kafka_partition").cast("int").alias("kafka_partition"),
        F.col("kafka_offset").cast("long").alias("kafka_offset"),
        F.lit(run_id).cast("string").alias("run_id"),
        now.alias("quarantined_at"),
        F.to_date(now).alias("quarantine_date"),
        F.col("source_epoch").cast("long").alias("source_epoch"),
        F.col("source_offset").cast("long").alias("source_offset"),
    )


# --------------------------------------------------------------------------- curation


def silver_base_schema(entity: Entity) -> StructType:
    """The silver columns every entity has: the contract's fields, then lineage columns."""
    fields = [
        *contract_schema(entity.model).fields,
        StructField("event_date", DateType(), nullable=False),
        StructField("ingest_id", StringType(), nullable=False),
        StructField("ingested_at", TimestampType(), nullable=False),
        StructField("source", StringType(), nullable=False),
        StructField("kafka_topic", StringType(), nullable=True),
        StructField("kafka_partition", IntegerType(), nullable=True),
        StructField("kafka_offset", LongType(), nullable=True),
        StructField("source_epoch", LongType(), nullable=True),
        StructField("source_offset", LongType(), nullable=True),
        StructField("bronze_version", LongType(), nullable=False),
        StructField("curation_run_id", StringType(), nullable=False),
        StructField("curated_at", TimestampType(), nullable=False),
    ]
    return StructType(fields)


#: Columns the silver rows of a product with `fx` gain from the reference data.
FX_FIELDS = (
    StructField("currency_minor_units", IntegerType(), nullable=True),
    StructField("reporting_currency", StringType(), nullable=False),
    StructField("fx_rate", DecimalType(20, 10), nullable=True),
    StructField("amount_reporting", REPORTING_AMOUNT_TYPE, nullable=True),
)


def silver_schema(entity: Entity) -> StructType:
    """The full silver schema of an entity (with the FX columns when its product has `fx`)."""
    base = silver_base_schema(entity)
    if product_of(entity).fx:
        return StructType([*base.fields, *FX_FIELDS])
    return base


def bronze_to_checked(df: DataFrame, entity: Entity) -> DataFrame:
    """Bronze rows -> the same rows plus the contract check, normalising each payload.

    Args:
        df: Bronze rows (`BRONZE_COLUMNS`), optionally with `_commit_version`.
        entity: Whose contract applies.
    """
    check = contract_check_udf(entity, normalize=True)
    return df.withColumn(
        CHECK_COLUMN, check(F.col("record_key").cast("binary"), F.col("payload").cast("binary"))
    )


def parse_checked(df: DataFrame, entity: Entity, *, run_id: str) -> DataFrame:
    """Checked bronze rows that passed -> typed silver rows (before enrichment).

    Args:
        df: Output of `bronze_to_checked`, with `_commit_version` (the bronze version).
        entity: Whose contract types the columns.
        run_id: The curation run, recorded on every row.
    """
    schema = contract_schema(entity.model)
    parsed = df.where(F.col(f"{CHECK_COLUMN}.error").isNull()).withColumn(
        "_record", F.from_json(F.col(f"{CHECK_COLUMN}.normalized"), schema)
    )
    return parsed.select(
        *[F.col(f"_record.{field.name}").alias(field.name) for field in schema.fields],
        F.to_date(F.col(f"_record.{entity.event_time_field}")).alias("event_date"),
        "ingest_id",
        "ingested_at",
        "source",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        F.col("source_epoch").cast("long").alias("source_epoch"),
        F.col("source_offset").cast("long").alias("source_offset"),
        F.col("_commit_version").cast("long").alias("bronze_version"),
        F.lit(run_id).alias("curation_run_id"),
        F.current_timestamp().alias("curated_at"),
        # Kept for quarantining rows an expectation drops; not a silver column.
        F.col(f"{CHECK_COLUMN}.payload").alias("payload"),
    )


#: What a null part of the order token counts as: older than every real token (epochs and
#: offsets are >= 0), so rows landed before the token existed never win over rows with one.
_NO_TOKEN = -1


def recency_order(entity: Entity, *, prefix: str = "") -> list[Column]:
    """Columns that order versions of one record, newest first: event time, then the order
    token `(source_epoch, source_offset)`, the order in which the platform accepted them.

    `ingested_at` and ids are not part of the order. `ingest_id` comes last only to make the
    order total among rows with the same token (one record landed twice, or rows from before
    the token, whose null token sorts oldest), so every run picks the same winner.
    """
    return [
        F.col(f"{prefix}{entity.event_time_field}").desc(),
        F.coalesce(F.col(f"{prefix}source_epoch"), F.lit(_NO_TOKEN)).desc(),
        F.coalesce(F.col(f"{prefix}source_offset"), F.lit(_NO_TOKEN)).desc(),
        F.col(f"{prefix}ingest_id").desc(),
    ]


def latest_per_key(df: DataFrame, entity: Entity) -> DataFrame:
    """Keep one row per natural key: the latest version (see `recency_order`)."""
    window = Window.partitionBy(entity.key_field).orderBy(*recency_order(entity))
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def latest_valid_per_key(df: DataFrame, entity: Entity, drop_names: Sequence[str]) -> DataFrame:
    """Keep one row per key: the latest version that fails none of the `drop` expectations.

    Validity is decided before recency: a newer version an expectation drops (it goes to
    quarantine) must not hide an older valid one.

    Args:
        df: Rows flagged by `flag_expectations`.
        entity: Whose key and event time apply.
        drop_names: The names of the entity's `drop` expectations.
    """
    return df.where(~failing(df, drop_names)).transform(latest_per_key, entity)


def newer_than(entity: Entity, source: str = "s", target: str = "t") -> str:
    """SQL condition: the `source` row is a later version than the `target` row, by event
    time then order token (a null token is the oldest), as `recency_order`. An equal token is
    not newer: replaying a batch changes nothing."""
    ts = entity.event_time_field

    def token(alias: str) -> str:
        return (
            f"named_struct('e', coalesce({alias}.source_epoch, {_NO_TOKEN}), "
            f"'o', coalesce({alias}.source_offset, {_NO_TOKEN}))"
        )

    return (
        f"({source}.{ts} > {target}.{ts}) OR "
        f"({source}.{ts} = {target}.{ts} AND {token(source)} > {token(target)})"
    )


def with_fx(
    df: DataFrame,
    currencies: DataFrame,
    fx_rates: DataFrame,
    *,
    reporting_currency: str,
    reporting_minor_units: int,
) -> DataFrame:
    """Add minor units, the FX rate to `reporting_currency` valid on the event date, and the
    converted amount rounded to the reporting currency's minor units.

    Args:
        df: Silver transactions (`currency`, `amount`, `event_date`).
        currencies: `code, minor_units` (reference data).
        fx_rates: `base_currency, quote_currency, rate, valid_from` (reference data): one
            unit of base costs `rate` units of quote from `valid_from` on.
        reporting_currency: ISO code to convert to.
        reporting_minor_units: Its minor units (the rounding of converted amounts).

    Returns:
        `df` with `FX_FIELDS` appended. A currency without a rate keeps a null `fx_rate` and
        `amount_reporting` (an expectation reports it); no row is ever lost to a join.
    """
    units = currencies.select(
        F.col("code").alias("_code"), F.col("minor_units").cast("int").alias("_units")
    )
    rates = fx_rates.where(F.col("quote_currency") == reporting_currency).select(
        F.col("base_currency").alias("_base"),
        F.col("rate").cast(DecimalType(20, 10)).alias("_rate"),
        F.col("valid_from").cast("date").alias("_valid_from"),
    )
    # The reporting currency converts to itself; the reference table need not list it.
    identity = df.sparkSession.createDataFrame(
        [(reporting_currency, date(1970, 1, 1))], "_base string, _valid_from date"
    ).select("_base", F.lit(1).cast(DecimalType(20, 10)).alias("_rate"), "_valid_from")
    keyed = df.withColumn("_row", F.monotonically_increasing_id())
    candidates = keyed.join(
        F.broadcast(rates.unionByName(identity)),
        (F.col("currency") == F.col("_base")) & (F.col("_valid_from") <= F.col("event_date")),
        "left",
    )
    latest = Window.partitionBy("_row").orderBy(F.col("_valid_from").desc_nulls_last())
    chosen = (
        candidates.withColumn("_pick", F.row_number().over(latest))
        .where("_pick = 1")
        .join(F.broadcast(units), F.col("currency") == F.col("_code"), "left")
    )
    converted = F.round(F.col("amount") * F.col("_rate"), reporting_minor_units)
    return chosen.select(
        *[F.col(name) for name in df.columns],
        F.col("_units").alias("currency_minor_units"),
        F.lit(reporting_currency).alias("reporting_currency"),
        F.col("_rate").alias("fx_rate"),
        converted.cast(REPORTING_AMOUNT_TYPE).alias("amount_reporting"),
    )


def daily_account_totals(silver: DataFrame) -> DataFrame:
    """Gold: per event date, account and currency, the count and totals (original and
    reporting currency)."""
    return silver.groupBy("event_date", "account_id", "currency").agg(
        F.count(F.lit(1)).alias("transaction_count"),
        F.sum("amount").cast(SUM_TYPE).alias("total_amount"),
        F.first("reporting_currency", ignorenulls=True).alias("reporting_currency"),
        F.sum("amount_reporting").cast(SUM_TYPE).alias("total_amount_reporting"),
    )


def claims_daily(silver: DataFrame) -> DataFrame:
    """Gold: per event date, claim type and current status, the count and total amount."""
    return silver.groupBy("event_date", "claim_type", "claim_status").agg(
        F.count(F.lit(1)).alias("claim_count"),
        F.sum("claim_amount").cast(SUM_TYPE).alias("total_claim_amount"),
    )


#: The gold transforms by the name of the product they compute (`DataProduct.gold`); every
#: declared product has one (tests/unit/test_products.py).
GOLD_TRANSFORMS: dict[str, Callable[[DataFrame], DataFrame]] = {
    transform.__name__: transform for transform in (daily_account_totals, claims_daily)
}
