"""Factories of realistic sample records, shared by `dataplatform generate` and the tests.

Valid records follow the contracts; `invalid_*` records carry exactly one defect each, drawn from
the kinds of bad input the ingestor must reject (and the name of the field it must report).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

EntityName = Literal["transactions", "claims"]
Record = dict[str, Any]

_CURRENCIES = ("USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "CHF", "CAD")
_TRANSACTION_TYPES = ("debit", "debit", "credit", "transfer", "payment", "refund", "fee")
_CATEGORIES = (
    "groceries",
    "utilities",
    "salary",
    "entertainment",
    "transport",
    "housing",
    "healthcare",
    "education",
)
_CLAIM_TYPES = ("auto", "health", "home", "life", "property", "travel", "liability")
_CLAIM_STATUSES = ("submitted", "submitted", "under_review", "approved", "rejected", "paid")


def _unique_suffix(rng: random.Random) -> str:
    # A random 48-bit suffix keeps ids unique across runs and processes, unlike a timestamp.
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex[:12]


def _amount(rng: random.Random, *, low: float, high: float, minor_units: int) -> str:
    # Log-uniform: many small amounts, a few large ones, like real ledgers.
    value = Decimal(str(10 ** rng.uniform(math.log10(low), math.log10(high))))
    return str(value.quantize(Decimal(1).scaleb(-minor_units)))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def transaction(rng: random.Random | None = None, **overrides: Any) -> Record:
    """A valid financial transaction as a client would send it.

    Args:
        rng: Source of randomness (a seeded one gives reproducible records).
        **overrides: Fields to set verbatim (e.g. `transaction_id="FT-1"`).
    """
    rng = rng or random.Random()  # noqa: S311 - sample data, not secrets
    now = datetime.now(UTC)
    currency = rng.choice(_CURRENCIES)
    record: Record = {
        "transaction_id": f"FT-{now:%Y%m%d%H%M%S}-{_unique_suffix(rng)}",
        "timestamp": _iso(now - timedelta(seconds=rng.randint(0, 3600))),
        "account_id": f"ACC-{rng.randint(100000, 999999)}",
        "amount": _amount(rng, low=1.0, high=10000.0, minor_units=0 if currency == "JPY" else 2),
        "currency": currency,
        "transaction_type": rng.choice(_TRANSACTION_TYPES),
        "merchant_id": f"MER-{rng.randint(100, 999)}" if rng.random() > 0.3 else None,
        "category": rng.choice(_CATEGORIES),
    }
    record.update(overrides)
    return record


def claim(rng: random.Random | None = None, **overrides: Any) -> Record:
    """A valid insurance claim as a client would send it.

    Args:
        rng: Source of randomness (a seeded one gives reproducible records).
        **overrides: Fields to set verbatim (e.g. `claim_status="approved"`).
    """
    rng = rng or random.Random()  # noqa: S311 - sample data, not secrets
    now = datetime.now(UTC)
    record: Record = {
        "claim_id": f"IC-{now:%Y%m%d%H%M%S}-{_unique_suffix(rng)}",
        "timestamp": _iso(now - timedelta(seconds=rng.randint(0, 3600))),
        "policy_number": f"POL-{rng.randint(1000000, 9999999)}",
        "claim_amount": _amount(rng, low=500.0, high=50000.0, minor_units=2),
        "claim_type": rng.choice(_CLAIM_TYPES),
        "claim_status": rng.choice(_CLAIM_STATUSES),
        "customer_id": f"CUST-{rng.randint(10000, 99999)}",
        "incident_date": _iso(now - timedelta(days=rng.randint(0, 365))),
    }
    record.update(overrides)
    return record


#: One defect each: (name, the field the rejection must name, mutation).
Defect = tuple[str, str, Callable[[Record], None]]

TRANSACTION_DEFECTS: tuple[Defect, ...] = (
    ("invalid_timestamp", "timestamp", lambda r: r.update(timestamp="not-a-date")),
    ("non_numeric_amount", "amount", lambda r: r.update(amount="not-a-number")),
    ("negative_amount", "amount", lambda r: r.update(amount="-10.00")),
    ("unknown_currency", "currency", lambda r: r.update(currency="XYZ")),
    ("missing_account_id", "account_id", lambda r: r.pop("account_id")),
    ("wrong_type_account_id", "account_id", lambda r: r.update(account_id=12345)),
    ("unknown_transaction_type", "transaction_type", lambda r: r.update(transaction_type="gift")),
)

CLAIM_DEFECTS: tuple[Defect, ...] = (
    ("invalid_timestamp", "timestamp", lambda r: r.update(timestamp="2024-13-45T99:00:00")),
    ("non_numeric_amount", "claim_amount", lambda r: r.update(claim_amount="lots")),
    ("negative_amount", "claim_amount", lambda r: r.update(claim_amount=-1)),
    ("missing_customer_id", "customer_id", lambda r: r.pop("customer_id")),
    ("unknown_claim_type", "claim_type", lambda r: r.update(claim_type="pet")),
    ("wrong_type_policy_number", "policy_number", lambda r: r.update(policy_number=["POL"])),
)


def invalid(entity: EntityName, rng: random.Random | None = None) -> tuple[Record, str, str]:
    """A record of `entity` with one random defect.

    Returns:
        `(record, defect name, field the rejection must name)`.
    """
    rng = rng or random.Random()  # noqa: S311 - sample data, not secrets
    record = transaction(rng) if entity == "transactions" else claim(rng)
    name, field, mutate = rng.choice(
        TRANSACTION_DEFECTS if entity == "transactions" else CLAIM_DEFECTS
    )
    mutate(record)
    return record, name, field


def record(entity: EntityName, rng: random.Random | None = None) -> Record:
    """A valid record of `entity`."""
    return transaction(rng) if entity == "transactions" else claim(rng)
