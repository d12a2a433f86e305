"""The JVM contract check (`contract_sql`) against the Python one (`check_record`), on Spark.

A corpus of good and bad records, hand-picked edge cases and seeded random mutations in the
manner of schemathesis/hypothesis (unicode, huge numbers, exponents, negative zero, repeated
keys, missing and extra fields, wrong types, boundary and naive timestamps, lower-case
currencies, payloads that are not UTF-8), is judged by the landing check (JVM first, Python for
what the JVM leaves) and by the Python UDF alone: both must give the same verdict, reason,
payload and record key for every record. The test also checks that the JVM did the judging for
most ordinary records and left the cases it cannot judge exactly to Python.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from dataplatform.contracts import CLAIMS, TRANSACTIONS, Entity
from pyspark_jobs import contract_sql, transforms
from tests.factories import claim, transaction
from tests.unit.spark_fixtures import spark

__all__ = ["spark"]


class Raw(str):
    """A value written into the JSON text as it is (numbers with their exact digits)."""

    __slots__ = ()


EDGE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    Raw("-0"),
    Raw("-0.0"),
    Raw("0.000000"),
    Raw("0.0000001"),
    Raw("1.1000000"),
    Raw("1e3"),
    Raw("1E-2"),
    Raw("-1.5e+2"),
    Raw("123456789012.123456"),
    Raw("999999999999.99"),
    Raw("1234567890123"),
    Raw("12345678901234567890"),
    Raw("9" * 400),
    Raw("0.5"),
    Raw("-0.25"),
    Raw("-1234567.5"),
    Raw("125.50"),
    "",
    " ",
    "x",
    "125.50",
    "-5",
    "-0",
    "007",
    "1e3",
    "+1",
    " 1.5",
    "1.1234567",
    "1234567890123",
    "NaN",
    "usd",
    "USD",
    "eur",
    "Jpy",
    "XXX",
    "xyz",
    "US",
    "USDD",
    "ÜSD",
    "ß",
    "debit",
    "DEBIT",
    "refund",
    "auto",
    "paid",
    "under_review",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "2024-01-01T12:00:00",
    "2024-01-01T12:00:00.123456Z",
    "2024-01-01T12:00:00.1234567Z",
    "2024-01-01T12:00:00-00:00",
    "2024-01-01T12:00:00+05:30",
    "2024-01-01T12:00:00+23:59",
    "2024-01-01T12:00:00+24:00",
    "2024-01-01T24:00:00",
    "2024-01-01T12:00:60Z",
    "2024-01-01 12:00:00",
    "2024-01-01t12:00:00z",
    "2024-01-01",
    "yesterday",
    Raw("1704110400"),
    "FT-1",
    "ACC-1",
    "-FT",
    "FT 1",
    "FT\u20281",
    "FT\u00e91",
    "a" * 64,
    "a" * 65,
    "\u00fc" * 65,
    "groceries",
    "  groceries",
    "groceries  ",
    "\u3000x",
    "x\u00a0",
    "caf\u00e9 \U0001f600",
    "\u00fc" * 64,
    {"a": 1},
    [1, 2],
    [],
]


def _token(value: Any, *, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii_only)


def _object(pairs: list[tuple[str, Any]], *, rng: random.Random) -> bytes:
    """JSON text of `pairs` (repeated keys kept), in one of a few layouts."""
    ascii_only = rng.random() < 0.3
    colon, comma = rng.choice([(":", ","), (": ", ", "), (" : ", " ,\n "), ("\t:", ",\r\n")])
    members = comma.join(
        f"{json.dumps(k, ensure_ascii=ascii_only)}{colon}{_token(v, ascii_only=ascii_only)}"
        for k, v in pairs
    )
    return rng.choice(["{%s}", " { %s } ", "\n{%s}\n"]).replace("%s", members).encode()


def _dump(record: dict[str, Any]) -> bytes:
    return _object(list(record.items()), rng=random.Random(0))


def _hand_picked(entity: Entity, good: dict[str, Any]) -> Iterator[tuple[str, bytes | None, Any]]:
    """(case, Kafka key, value) of records chosen for what they test."""
    key_field = entity.key_field
    key = good[key_field].encode()
    text = _dump(good).decode()
    amount = "amount" if "amount" in good else "claim_amount"
    yield "good", key, _dump(good)
    yield "good without Kafka key", None, _dump(good)
    yield "Kafka key differs", b"OTHER-1", _dump(good)
    yield "Kafka key not UTF-8", b"\xff\xfe", _dump(good)
    yield "empty message", key, None
    yield "empty payload", key, b""
    yield "not UTF-8", key, text.replace("}", ', "x": "\xff"}').encode("latin-1")
    yield "UTF-8 BOM", key, b"\xef\xbb\xbf" + _dump(good)
    yield "JSON null", key, b"null"
    yield "JSON array", key, b"[" + _dump(good) + b"]"
    yield "JSON string", key, b'"x"'
    yield "empty object", key, b"{}"
    yield "truncated", key, _dump(good)[:-1]
    yield "trailing comma", key, text[:-1].encode() + b",}"
    yield "trailing garbage", key, _dump(good) + b"x"
    yield "two objects", key, _dump(good) + _dump(good)
    yield "single quotes", key, text.replace('"', "'").encode()
    yield "repeated key", key, text.replace("{", f'{{"{key_field}": "X-1", ', 1).encode()
    yield "repeated extra key", key, text.replace("{", '{"zz": 1, "zz": 2, ', 1).encode()
    yield "exponent amount", key, _dump({**good, amount: Raw("1.255e2")})
    yield "16 digits", key, _dump({**good, amount: Raw("1234567890.123456")})
    yield "15 digits", key, _dump({**good, amount: Raw("123456789.123456")})
    yield "NaN amount", key, text.replace(json.dumps(good[amount]), "NaN").encode()
    yield "Infinity amount", key, text.replace(json.dumps(good[amount]), "-Infinity").encode()
    yield "leading zero number", key, _dump({**good, amount: Raw("0125.5")})
    yield "plus number", key, _dump({**good, amount: Raw("+125.5")})
    yield "escaped id", key, text.replace(good[key_field], good[key_field][:2] + "\\u0041").encode()
    yield "escaped quote", key, _dump({**good, key_field: Raw('"FT\\"1"')})
    yield "raw tab in string", key, _dump({**good, key_field: Raw('"FT\t1"')})
    yield "vertical tab whitespace", key, text.replace(", ", ",\x0b").encode()
    yield "nested extra", key, _dump({**good, "meta": {key_field: "X"}})
    yield "odd extra keys", key, _dump({**good, "a b": 1, "\u00fc": 2, "": 3})
    yield "comment", key, text.replace("{", "{/* c */", 1).encode()
    for field in good:
        yield f"missing {field}", key, _dump({k: v for k, v in good.items() if k != field})
    yield "only extras", key, _dump({"zz": 1, "aa": None})


def _random_records(
    entity: Entity, good: dict[str, Any], rng: random.Random, count: int
) -> Iterator[tuple[str, bytes | None, Any]]:
    """Seeded mutations: fields replaced by edge values, dropped, added, shuffled."""
    fields = list(good)
    for n in range(count):
        record = dict(good)
        for field in rng.sample(fields, rng.choice([0, 0, 1, 1, 2, 3])):
            if rng.random() < 0.15:
                del record[field]
            else:
                record[field] = rng.choice(EDGE_VALUES)
        if rng.random() < 0.1:
            record[rng.choice(["extra", "zz", "note_1"])] = rng.choice(EDGE_VALUES)
        pairs = list(record.items())
        if rng.random() < 0.5:
            rng.shuffle(pairs)
        value = record.get(entity.key_field)
        key_choice = rng.random()
        if key_choice < 0.2:
            key = None
        elif key_choice < 0.25:
            key = b"K-other"
        else:
            key = value.encode() if isinstance(value, str) else b"K-1"
        yield f"random {n}", key, _object(pairs, rng=rng)


def _corpus(entity: Entity, rng: random.Random) -> list[tuple[str, bytes | None, Any]]:
    factory = transaction if entity is TRANSACTIONS else claim
    goods = [
        factory(),
        factory(amount="125.50") if entity is TRANSACTIONS else factory(claim_amount="0.01"),
        factory(timestamp="2024-03-01T12:30:00.5+02:00"),
    ]
    if entity is TRANSACTIONS:
        goods.append(factory(currency="eur", merchant_id=None, category="caf\u00e9"))
        goods.append({k: v for k, v in factory().items() if k not in ("merchant_id", "category")})
    corpus = []
    for good in goods:
        corpus.extend(_hand_picked(entity, good))
    corpus.extend(_random_records(entity, goods[0], rng, 400))
    return corpus


def _judge(spark: SparkSession, entity: Entity) -> tuple[list[Row], list[Row], dict[str, bool]]:
    corpus = _corpus(entity, random.Random(f"contract-sql-{entity.name}"))
    rows = [(i, case, key, value) for i, (case, key, value) in enumerate(corpus)]
    df = spark.createDataFrame(rows, "i int, case string, key binary, value binary")
    landing = df.transform(transforms.contract_check, entity)
    python = df.withColumn(
        transforms.CHECK_COLUMN,
        transforms.contract_check_udf(entity, normalize=False)(F.col("key"), F.col("value")),
    )
    judged = df.transform(contract_sql.judge, entity)
    decided = {
        row.case: row.decided
        for row in judged.select(
            "case", F.col(contract_sql.DECIDED_COLUMN).alias("decided")
        ).collect()
    }

    def results(frame: Any) -> list[Row]:
        check = transforms.CHECK_COLUMN
        return sorted(
            frame.select(
                "i", "case", f"{check}.payload", f"{check}.record_key", f"{check}.error"
            ).collect()
        )

    return results(landing), results(python), decided


@pytest.mark.parametrize("entity", [TRANSACTIONS, CLAIMS], ids=lambda e: e.name)
def test_contract_check_jvm_matches_python_on_corpus(spark: SparkSession, entity: Entity) -> None:
    landing, python, decided = _judge(spark, entity)

    assert len(landing) == len(python)
    mismatches = [
        (jvm.case, jvm.error, ref.error, jvm.record_key, ref.record_key)
        for jvm, ref in zip(landing, python, strict=True)
        if jvm != ref
    ]
    assert not mismatches, mismatches[:10]
    # The JVM judged most records, refusals with reasons included, not only the easy ones.
    judged = [row for row in landing if decided[row.case]]
    assert len(judged) > len(landing) / 2
    assert sum(row.error is None for row in judged) > 50
    refused = {row.error.split(":")[0] for row in judged if row.error is not None}
    assert len(refused) >= 5, refused
    # What the JVM cannot judge exactly went to Python.
    for case in (
        "exponent amount",
        "16 digits",
        "repeated key",
        "repeated extra key",
        "not UTF-8",
        "escaped id",
        "Kafka key differs",
        "nested extra",
        "NaN amount",
    ):
        assert decided[case] is False, case
    for case in (
        "good",
        "good without Kafka key",
        "15 digits",
        "missing timestamp",
        "empty message",
    ):
        assert decided[case] is True, case


def test_contract_check_jvm_reason_matches_python_for_refusals(spark: SparkSession) -> None:
    landing, _, decided = _judge(spark, TRANSACTIONS)
    by_case = {row.case: row for row in landing}

    assert by_case["missing currency"].error == "currency: Field required"
    assert decided["missing currency"] is True
    assert by_case["only extras"].error.endswith(
        "zz: Extra inputs are not permitted; aa: Extra inputs are not permitted"
    )
