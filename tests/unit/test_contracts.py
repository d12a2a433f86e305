from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from dataplatform.contracts import (
    CLAIMS,
    ENTITIES,
    TRANSACTIONS,
    FinancialTransactionIn,
    InsuranceClaimIn,
)
from dataplatform.contracts.common import currency_minor_units
from tests.factories import claim, transaction


def _errors(model: type, payload: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload)
    return {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}


def test_validate_transaction_naive_timestamp_read_as_utc() -> None:
    record = FinancialTransactionIn.model_validate(transaction(timestamp="2024-03-01T12:30:00"))
    assert record.timestamp == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def test_validate_transaction_offset_timestamp_normalised_to_utc() -> None:
    record = FinancialTransactionIn.model_validate(
        transaction(timestamp="2024-03-01T14:30:00+02:00")
    )
    assert record.timestamp == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def test_validate_transaction_amount_is_exact_decimal() -> None:
    record = FinancialTransactionIn.model_validate_json(
        '{"transaction_id":"FT-1","timestamp":"2024-01-01T00:00:00Z","account_id":"A-1",'
        '"amount":0.1,"currency":"usd","transaction_type":"payment"}'
    )
    assert record.amount == Decimal("0.1")
    assert record.currency == "USD"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"amount": -1}, "amount"),
        ({"amount": "not-a-number"}, "amount"),
        ({"currency": "XXY"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"timestamp": "invalid-date"}, "timestamp"),
        ({"transaction_type": "theft"}, "transaction_type"),
        ({"transaction_id": "has space"}, "transaction_id"),
        ({"transaction_id": "x" * 65}, "transaction_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_validate_transaction_bad_field_named(override: dict, field: str) -> None:
    assert field in _errors(FinancialTransactionIn, transaction(**override))


def test_validate_transaction_missing_fields_all_named() -> None:
    errors = _errors(FinancialTransactionIn, {"transaction_id": "FT-1"})
    assert set(errors) == {"timestamp", "account_id", "amount", "currency", "transaction_type"}


@pytest.mark.parametrize("claim_type", ["auto", "health", "home", "life", "property"])
@pytest.mark.parametrize("status", ["submitted", "under_review", "approved", "rejected", "paid"])
def test_validate_claim_seed_values_accepted(claim_type: str, status: str) -> None:
    InsuranceClaimIn.model_validate(claim(claim_type=claim_type, claim_status=status))


def test_validate_transaction_seed_jpy_with_cents_accepted() -> None:
    # Questionable but valid: flagged downstream by an expectation, not refused at the edge.
    record = FinancialTransactionIn.model_validate(transaction(currency="JPY", amount=1234.56))
    assert record.amount == Decimal("1234.56")


def test_currency_table_has_minor_units() -> None:
    units = currency_minor_units()
    assert units["USD"] == 2 and units["JPY"] == 0 and units["BHD"] == 3
    assert all(len(code) == 3 and code.isupper() for code in units)


def test_entities_topics_and_tables_follow_layout() -> None:
    assert TRANSACTIONS.topic == "finance.transactions.v1"
    assert CLAIMS.topic == "insurance.claims.v1"
    assert TRANSACTIONS.table_path("bronze") == "bronze/finance/transactions"
    assert [e.key_field for e in ENTITIES] == ["transaction_id", "claim_id"]
