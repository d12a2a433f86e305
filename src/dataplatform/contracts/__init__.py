"""Data contracts: the single source of truth for every shape of a record.

JSON Schema, the OpenAPI spec, Spark schemas and SQL tables are derived from these models.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from dataplatform.contracts.finance import FinancialTransactionIn
from dataplatform.contracts.insurance import InsuranceClaimIn


@dataclass(frozen=True)
class Entity:
    """One entity of the lake: its contract, Kafka topic and Delta table names."""

    model: type[BaseModel]
    domain: str
    name: str
    key_field: str
    event_time_field: str
    version: int = 1

    @property
    def topic(self) -> str:
        """Kafka topic `<domain>.<entity>.v<N>`."""
        return f"{self.domain}.{self.name}.v{self.version}"

    def table_path(self, layer: str) -> str:
        """Relative Delta table path `<layer>/<domain>/<entity>` inside the lakehouse bucket."""
        return f"{layer}/{self.domain}/{self.name}"


def _entity(model: type[BaseModel]) -> Entity:
    return Entity(
        model=model,
        domain=model.domain,  # type: ignore[attr-defined]
        name=model.entity,  # type: ignore[attr-defined]
        key_field=model.key_field,  # type: ignore[attr-defined]
        event_time_field=model.event_time_field,  # type: ignore[attr-defined]
    )


TRANSACTIONS = _entity(FinancialTransactionIn)
CLAIMS = _entity(InsuranceClaimIn)
ENTITIES: tuple[Entity, ...] = (TRANSACTIONS, CLAIMS)

__all__ = [
    "CLAIMS",
    "ENTITIES",
    "TRANSACTIONS",
    "Entity",
    "FinancialTransactionIn",
    "InsuranceClaimIn",
]
