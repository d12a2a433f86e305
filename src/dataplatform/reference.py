"""Reference data in PostgreSQL: currencies with minor units and FX rates to reporting currencies.

The curation job reads these tables over JDBC to enrich transactions. `seed_reference_data`
creates and fills them idempotently (it is safe to run at every start): currencies come from
the same ISO 4217 table the contracts validate against, so every currency the ingestor accepts
has a row.

The FX rates are fixed reference rates (ECB euro reference rates of 2 January 2024), valid from
2000-01-01, so every event date has a rate; a production deployment loads daily rates into the
same table (a new `valid_from` per day) and the curation job picks the latest rate on or
before each event's date.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import product

import psycopg

from dataplatform.contracts.common import currency_minor_units
from dataplatform.settings import PostgresSettings

logger = logging.getLogger(__name__)

SCHEMA = "reference"

#: Curated amounts can be reported in any of these; rates to each are seeded.
REPORTING_CURRENCIES = ("EUR", "USD")

#: Units of currency per 1 EUR (ECB reference rates, 2 January 2024).
EUR_REFERENCE_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("1.0956"),
    "JPY": Decimal("155.72"),
    "GBP": Decimal("0.86518"),
    "CHF": Decimal("0.9305"),
    "CAD": Decimal("1.4565"),
    "AUD": Decimal("1.6163"),
    "CNY": Decimal("7.8136"),
    "SEK": Decimal("11.1325"),
    "NOK": Decimal("11.2405"),
    "DKK": Decimal("7.4547"),
    "PLN": Decimal("4.3430"),
    "CZK": Decimal("24.717"),
    "HKD": Decimal("8.5593"),
    "SGD": Decimal("1.4522"),
    "NZD": Decimal("1.7471"),
    "INR": Decimal("91.2065"),
    "BRL": Decimal("5.3541"),
    "MXN": Decimal("18.6443"),
    "ZAR": Decimal("20.3710"),
    "KRW": Decimal("1433.66"),
}
RATES_VALID_FROM = "2000-01-01"
RATES_SOURCE = "ECB euro reference rates 2024-01-02 (fixed seed)"

_RATE_QUANTUM = Decimal("0.0000000001")

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.currencies (
    code        char(3)  PRIMARY KEY CHECK (code ~ '^[A-Z]{{3}}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);
COMMENT ON TABLE {SCHEMA}.currencies IS 'ISO 4217 currencies and their minor units';
CREATE TABLE IF NOT EXISTS {SCHEMA}.fx_rates (
    base_currency  char(3)        NOT NULL REFERENCES {SCHEMA}.currencies (code),
    quote_currency char(3)        NOT NULL REFERENCES {SCHEMA}.currencies (code),
    rate           numeric(20,10) NOT NULL CHECK (rate > 0),
    valid_from     date           NOT NULL,
    source         text           NOT NULL,
    PRIMARY KEY (base_currency, quote_currency, valid_from)
);
COMMENT ON TABLE {SCHEMA}.fx_rates IS
    'one unit of base_currency costs rate units of quote_currency from valid_from on';
"""

UPSERT_CURRENCY = f"""
INSERT INTO {SCHEMA}.currencies (code, minor_units) VALUES (%s, %s)
ON CONFLICT (code) DO UPDATE SET minor_units = EXCLUDED.minor_units
WHERE {SCHEMA}.currencies.minor_units IS DISTINCT FROM EXCLUDED.minor_units
"""

UPSERT_RATE = f"""
INSERT INTO {SCHEMA}.fx_rates (base_currency, quote_currency, rate, valid_from, source)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (base_currency, quote_currency, valid_from) DO UPDATE
SET rate = EXCLUDED.rate, source = EXCLUDED.source
WHERE ({SCHEMA}.fx_rates.rate, {SCHEMA}.fx_rates.source)
    IS DISTINCT FROM (EXCLUDED.rate, EXCLUDED.source)
"""


def seed_rates() -> list[tuple[str, str, Decimal]]:
    """`(base, quote, rate)` for every seeded currency into every reporting currency."""
    rates = []
    for base, quote in product(EUR_REFERENCE_RATES, REPORTING_CURRENCIES):
        if base == quote:
            continue
        # Units of quote per unit of base, through the euro: (quote/EUR) / (base/EUR).
        rate = EUR_REFERENCE_RATES[quote] / EUR_REFERENCE_RATES[base]
        rates.append((base, quote, rate.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_EVEN)))
    return rates


def seed_reference_data(settings: PostgresSettings) -> dict[str, int]:
    """Create the reference tables if missing and upsert the seed rows. Idempotent.

    Args:
        settings: The platform database (the tables live in schema `reference`).

    Returns:
        Rows inserted or changed per table (0 and 0 when everything was already seeded).
    """
    changed = {"currencies": 0, "fx_rates": 0}
    with psycopg.connect(settings.conninfo()) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        for code, units in sorted(currency_minor_units().items()):
            cur.execute(UPSERT_CURRENCY, (code, units))
            changed["currencies"] += cur.rowcount
        for base, quote, rate in seed_rates():
            cur.execute(UPSERT_RATE, (base, quote, rate, RATES_VALID_FROM, RATES_SOURCE))
            changed["fx_rates"] += cur.rowcount
    logger.info("reference data seeded", extra={"changed": changed})
    return changed
