"""Finance domain: financial transactions."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from dataplatform.contracts.common import CurrencyCode, Money, RecordId, ShortText, UtcDatetime

TransactionType = Literal[
    "debit", "credit", "transfer", "payment", "deposit", "withdrawal", "refund", "fee"
]


class FinancialTransactionIn(BaseModel):
    """A financial transaction as a client sends it (the seed's `FinancialTransaction`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": "FT-20240101120000-1234",
                    "timestamp": "2024-01-01T12:00:00Z",
                    "account_id": "ACC-123456",
                    "amount": "125.50",
                    "currency": "USD",
                    "transaction_type": "debit",
                    "merchant_id": "MER-123",
                    "category": "groceries",
                }
            ]
        },
    )

    domain: ClassVar[str] = "finance"
    entity: ClassVar[str] = "transactions"
    key_field: ClassVar[str] = "transaction_id"
    event_time_field: ClassVar[str] = "timestamp"

    transaction_id: RecordId
    timestamp: UtcDatetime
    account_id: RecordId
    amount: Money
    currency: CurrencyCode
    transaction_type: TransactionType
    merchant_id: RecordId | None = None
    category: ShortText | None = None
