"""Sample records for tests: the seed's shapes, valid by default."""

from __future__ import annotations

import uuid
from typing import Any


def unique(prefix: str) -> str:
    """An id unique to this test run."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def transaction(**overrides: Any) -> dict[str, Any]:
    """A financial transaction as the seed's clients send it (naive timestamp, float amount)."""
    record: dict[str, Any] = {
        "transaction_id": unique("FT"),
        "timestamp": "2024-03-01T12:30:00",
        "account_id": "ACC-123456",
        "amount": 125.5,
        "currency": "USD",
        "transaction_type": "debit",
        "merchant_id": "MER-123",
        "category": "groceries",
    }
    record.update(overrides)
    return record


def claim(**overrides: Any) -> dict[str, Any]:
    """An insurance claim as the seed's clients send it."""
    record: dict[str, Any] = {
        "claim_id": unique("IC"),
        "timestamp": "2024-03-01T12:30:00",
        "policy_number": "POL-1234567",
        "claim_amount": 2500.0,
        "claim_type": "auto",
        "claim_status": "submitted",
        "customer_id": "CUST-12345",
        "incident_date": "2024-02-20T08:00:00",
    }
    record.update(overrides)
    return record
