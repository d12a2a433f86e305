"""Variants of the transaction contract for the schema-evolution tests.

A module of its own with no test imports, because Spark's Python workers must import the
classes the contract check pickles: the test ships this file to them with `addPyFile`.
"""

from __future__ import annotations

from dataplatform.contracts import FinancialTransactionIn
from dataplatform.contracts.common import ShortText


class TransactionWithChannel(FinancialTransactionIn):
    """Version 1.1 of the contract: an optional field added."""

    channel: ShortText | None = None


class TransactionAmountAsText(FinancialTransactionIn):
    """An incompatible change: the amount's type changed."""

    amount: str  # type: ignore[assignment]


class TransactionWithBranch(FinancialTransactionIn):
    """An incompatible change: a new required field (existing rows have no value)."""

    branch: str
