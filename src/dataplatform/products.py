"""The data products of each entity, declared once: silver's FX enrichment, the gold table and
its columns, and the columns OPTIMIZE Z-orders each table by.

Spark-free, so the CLI and the tests read it without a JVM. Everything that is per entity in the
lake derives from `DATA_PRODUCTS`:

- `GOLD_PRODUCTS` (`gold/<domain>/<product>`; Terraform's `gold_products` default is checked
  against it) and `Lake.gold`;
- the gold table's Spark schema (`pyspark_jobs.schemas.gold_schema`) and its transform, the
  function of `pyspark_jobs.transforms` named after the product (`GOLD_TRANSFORMS`);
- silver's FX columns and the curation job's enrichment (`fx`);
- `ZORDER_COLUMNS` of the maintenance job's OPTIMIZE;
- `DAG_ENTITIES`, the entities the DAGs curate, check and maintain. Airflow parses the DAGs in
  a virtualenv of its own without this package, so `airflow_dags/common` holds the list as a
  literal and `tests/unit/test_products.py` fails when it differs from this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dataplatform.contracts import CLAIMS, TRANSACTIONS, Entity

#: Types of gold columns, in Delta's own vocabulary (`pyspark_jobs.schemas` maps them to
#: Spark). Sums of amounts are `decimal(30,6)`: sums of up to 10^6 rows of the contracts'
#: 18 digits fit.
GoldType = Literal["string", "long", "date", "decimal(30,6)"]


@dataclass(frozen=True)
class GoldColumn:
    """One column of a gold table: NOT NULL where the aggregate always has a value."""

    name: str
    type: GoldType
    nullable: bool = False


#: The first column of every gold table and its partition column: curation recomputes gold
#: day by day (`replaceWhere` on the days that changed in silver).
GOLD_PARTITION = GoldColumn("event_date", "date")


@dataclass(frozen=True)
class DataProduct:
    """What the lake makes of one entity beyond bronze and silver.

    Attributes:
        entity: The entity whose silver table feeds the product.
        gold: The gold table's name, `gold/<domain>/<gold>`; also the name of the
            `pyspark_jobs.transforms` function computing it from silver.
        gold_columns: The gold table's columns after `GOLD_PARTITION`, in order.
        fx: Silver rows are enriched with minor units and the amount converted to the
            reporting currency (the FX columns of `pyspark_jobs.transforms.FX_FIELDS`).
        silver_zorder: Columns silver is most often filtered on; OPTIMIZE clusters its files
            by them (Z-order), so a filter on any of them skips most files.
        gold_zorder: The same for the gold table; empty means compaction only.
    """

    entity: Entity
    gold: str
    gold_columns: tuple[GoldColumn, ...]
    fx: bool = False
    silver_zorder: tuple[str, ...] = ()
    gold_zorder: tuple[str, ...] = ()

    @property
    def gold_table_columns(self) -> tuple[GoldColumn, ...]:
        """Every column of the gold table: `GOLD_PARTITION`, then `gold_columns`."""
        return (GOLD_PARTITION, *self.gold_columns)

    @property
    def gold_table(self) -> str:
        """`gold/<domain>/<gold>`: the table's path inside the lake."""
        return f"gold/{self.entity.domain}/{self.gold}"


#: One product declaration per entity, in the order of `dataplatform.contracts.ENTITIES`.
DATA_PRODUCTS: tuple[DataProduct, ...] = (
    DataProduct(
        entity=TRANSACTIONS,
        gold="daily_account_totals",
        gold_columns=(
            GoldColumn("account_id", "string"),
            GoldColumn("currency", "string"),
            GoldColumn("transaction_count", "long"),
            GoldColumn("total_amount", "decimal(30,6)"),
            GoldColumn("reporting_currency", "string", nullable=True),
            GoldColumn("total_amount_reporting", "decimal(30,6)", nullable=True),
        ),
        fx=True,
        silver_zorder=("account_id", "event_date"),
        gold_zorder=("account_id",),
    ),
    DataProduct(
        entity=CLAIMS,
        gold="claims_daily",
        gold_columns=(
            GoldColumn("claim_type", "string"),
            GoldColumn("claim_status", "string"),
            GoldColumn("claim_count", "long"),
            GoldColumn("total_claim_amount", "decimal(30,6)"),
        ),
        silver_zorder=("policy_number", "customer_id"),
    ),
)

#: Products by `(domain, entity)`: a changed contract of the same entity (another model, the
#: next version) keeps its products.
_BY_ENTITY: dict[tuple[str, str], DataProduct] = {
    (product.entity.domain, product.entity.name): product for product in DATA_PRODUCTS
}


def product_of(entity: Entity) -> DataProduct:
    """The data product declared for `entity` (matched by domain and name).

    Raises:
        KeyError: `entity` has no declaration here (every entity needs one).
    """
    try:
        return _BY_ENTITY[(entity.domain, entity.name)]
    except KeyError:
        raise KeyError(
            f"no data product declared for {entity.domain}/{entity.name} in dataplatform.products"
        ) from None


#: Gold table per domain: `gold/<domain>/<product>`.
GOLD_PRODUCTS: dict[str, str] = {p.entity.domain: p.gold for p in DATA_PRODUCTS}

#: Bronze is filtered by the record key (a record's history, replays).
BRONZE_ZORDER: tuple[str, ...] = ("record_key",)

#: Z-order columns per table (`<layer>/<domain>/<entity or product>`); a table not listed is
#: only compacted.
ZORDER_COLUMNS: dict[str, tuple[str, ...]] = {
    table: columns
    for product in DATA_PRODUCTS
    for table, columns in (
        (product.entity.table_path("silver"), product.silver_zorder),
        (product.entity.table_path("bronze"), BRONZE_ZORDER),
        (product.gold_table, product.gold_zorder),
    )
    if columns
}

#: `<domain>/<entity>` of every entity the DAGs curate, check and maintain.
DAG_ENTITIES: tuple[str, ...] = tuple(f"{p.entity.domain}/{p.entity.name}" for p in DATA_PRODUCTS)
