"""The data-product declaration (`dataplatform.products`) and what is derived from it."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from dataplatform.contracts import CLAIMS, ENTITIES, TRANSACTIONS, Entity
from dataplatform.products import (
    DAG_ENTITIES,
    DATA_PRODUCTS,
    GOLD_PRODUCTS,
    ZORDER_COLUMNS,
    DataProduct,
    product_of,
)
from dataplatform.settings import project_root
from pyspark_jobs import transforms
from pyspark_jobs.schemas import SUM_TYPE, gold_schema

AIRFLOW_COMMON = project_root() / "airflow_dags" / "common" / "__init__.py"


def _module_constant(path: Path, name: str) -> object:
    """The literal value assigned to `name` at the top of `path`, read without importing it."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} assigns no {name}")


def test_declare_products_one_per_entity_in_entity_order() -> None:
    assert [product.entity for product in DATA_PRODUCTS] == list(ENTITIES)
    assert all(product_of(entity).entity == entity for entity in ENTITIES)


def test_product_of_new_contract_of_same_entity_keeps_its_product() -> None:
    # A changed contract (tests/integration/test_curation_schema.py) is the same entity.
    changed = dataclasses.replace(TRANSACTIONS, model=CLAIMS.model, version=2)

    assert product_of(changed) is product_of(TRANSACTIONS)


def test_product_of_undeclared_entity_names_it() -> None:
    stranger = Entity(
        model=TRANSACTIONS.model,
        domain="retail",
        name="orders",
        key_field="order_id",
        event_time_field="timestamp",
    )

    with pytest.raises(KeyError, match="retail/orders"):
        product_of(stranger)


def test_gold_products_one_table_per_domain() -> None:
    # Terraform's `gold_products` is keyed by domain: a second product in a domain would be
    # lost there silently.
    assert len(GOLD_PRODUCTS) == len(DATA_PRODUCTS)
    assert GOLD_PRODUCTS == {"finance": "daily_account_totals", "insurance": "claims_daily"}


def test_dag_entities_match_airflow_common_entities() -> None:
    in_dags = _module_constant(AIRFLOW_COMMON, "ENTITIES")

    assert in_dags == DAG_ENTITIES, (
        f"airflow_dags/common ENTITIES is {in_dags!r}; set it to {DAG_ENTITIES!r} "
        "(dataplatform.products.DAG_ENTITIES)"
    )


def test_zorder_columns_per_table_bronze_silver_gold() -> None:
    assert ZORDER_COLUMNS == {
        "bronze/finance/transactions": ("record_key",),
        "silver/finance/transactions": ("account_id", "event_date"),
        "gold/finance/daily_account_totals": ("account_id",),
        "bronze/insurance/claims": ("record_key",),
        "silver/insurance/claims": ("policy_number", "customer_id"),
    }


@pytest.mark.parametrize("product", DATA_PRODUCTS, ids=lambda p: p.gold)
def test_zorder_columns_are_columns_of_their_table(product: DataProduct) -> None:
    silver = transforms.silver_schema(product.entity).fieldNames()
    gold = gold_schema(product).fieldNames()

    assert set(product.silver_zorder) <= set(silver)
    assert set(product.gold_zorder) <= set(gold)


@pytest.mark.parametrize("product", DATA_PRODUCTS, ids=lambda p: p.gold)
def test_gold_transform_declared_for_every_product(product: DataProduct) -> None:
    assert product.gold in transforms.GOLD_TRANSFORMS


def test_gold_schema_types_and_nullability_from_declaration() -> None:
    assert gold_schema(product_of(TRANSACTIONS)) == StructType(
        [
            StructField("event_date", DateType(), nullable=False),
            StructField("account_id", StringType(), nullable=False),
            StructField("currency", StringType(), nullable=False),
            StructField("transaction_count", LongType(), nullable=False),
            StructField("total_amount", SUM_TYPE, nullable=False),
            StructField("reporting_currency", StringType(), nullable=True),
            StructField("total_amount_reporting", SUM_TYPE, nullable=True),
        ]
    )


@pytest.mark.parametrize("product", DATA_PRODUCTS, ids=lambda p: p.gold)
def test_silver_schema_fx_columns_only_for_fx_products(product: DataProduct) -> None:
    names = set(transforms.silver_schema(product.entity).fieldNames())
    fx = {field.name for field in transforms.FX_FIELDS}

    assert (fx <= names) is product.fx
    assert not (fx & names) or product.fx
