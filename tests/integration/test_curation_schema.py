"""Contract changes reaching silver: an added optional field lands without DDL and without
losing rows; an incompatible change is refused with a clear error and changes nothing."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from pyspark.sql import SparkSession

from dataplatform.contracts import TRANSACTIONS, FinancialTransactionIn
from dataplatform.lake import Lake
from dataplatform.settings import PostgresSettings
from pyspark_jobs import curation, quality
from tests.factories import transaction
from tests.integration.lakehouse_support import (
    assert_engines_agree,
    delta_rs_version,
    lake,
    lake_spark,
    write_bronze,
)

__all__ = ["lake", "lake_spark"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


VARIANTS = Path(__file__).with_name("contract_variants.py")


def _import_variants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contract_variants", VARIANTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["contract_variants"] = module
    spec.loader.exec_module(module)
    return module


variants = _import_variants()


@pytest.fixture(autouse=True)
def _ship_variants(lake_spark: SparkSession) -> None:
    # The contract check runs in Python workers, which import the variant classes by name.
    lake_spark.sparkContext.addPyFile(str(VARIANTS))


def _curate(
    spark: SparkSession, lake: Lake, entity: object, run_id: str, postgres: PostgresSettings
) -> curation.CurationResult:
    return curation.curate_entity(
        spark,
        lake,
        entity,  # type: ignore[arg-type]
        run_id=run_id,
        reference=curation.read_reference(spark, postgres),
        expectations=quality.load_expectations(TRANSACTIONS),
    )


def test_contract_optional_field_added_lands_without_ddl_or_row_loss(
    lake_spark: SparkSession, lake: Lake, postgres_settings: PostgresSettings
) -> None:
    before = [transaction() for _ in range(3)]
    write_bronze(lake_spark, lake, TRANSACTIONS, [(r, T0) for r in before])
    _curate(lake_spark, lake, TRANSACTIONS, "v1", postgres_settings)
    extended = dataclasses.replace(TRANSACTIONS, model=variants.TransactionWithChannel)
    after = [transaction(channel="web"), transaction(channel="branch")]
    write_bronze(lake_spark, lake, TRANSACTIONS, [(r, T0) for r in after])

    _curate(lake_spark, lake, extended, "v2", postgres_settings)

    silver = assert_engines_agree(
        lake_spark, lake, "silver/finance/transactions", ["transaction_id"]
    )
    channels = {row["transaction_id"]: row["channel"] for row in silver}
    assert channels == {
        **{r["transaction_id"]: None for r in before},
        **{r["transaction_id"]: r["channel"] for r in after},
    }


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            variants.TransactionAmountAsText,
            r"column amount is decimal\(18,6\) in silver/finance/transactions but string in the "
            "contract",
        ),
        (variants.TransactionWithBranch, r"new column branch is required \(NOT NULL\)"),
    ],
    ids=["type-changed", "required-added"],
)
def test_contract_incompatible_change_refused_with_clear_error(
    lake_spark: SparkSession,
    lake: Lake,
    postgres_settings: PostgresSettings,
    model: type[FinancialTransactionIn],
    message: str,
) -> None:
    write_bronze(lake_spark, lake, TRANSACTIONS, [(transaction(), T0)])
    _curate(lake_spark, lake, TRANSACTIONS, "v1", postgres_settings)
    version = delta_rs_version(lake, "silver/finance/transactions")
    changed = dataclasses.replace(TRANSACTIONS, model=model)

    with pytest.raises(curation.SchemaEvolutionError, match=message) as caught:
        _curate(lake_spark, lake, changed, "v2", postgres_settings)

    assert "publish a new contract version" in str(caught.value)
    assert delta_rs_version(lake, "silver/finance/transactions") == version
