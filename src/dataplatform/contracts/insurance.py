"""Insurance domain: insurance claims."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from dataplatform.contracts.common import Money, RecordId, UtcDatetime

ClaimType = Literal["auto", "health", "home", "life", "property", "travel", "liability"]
ClaimStatus = Literal["submitted", "under_review", "approved", "rejected", "paid", "closed"]


class InsuranceClaimIn(BaseModel):
    """An insurance claim as a client sends it (the seed's `InsuranceClaim`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "claim_id": "IC-20240101120000-1234",
                    "timestamp": "2024-01-01T12:00:00Z",
                    "policy_number": "POL-1234567",
                    "claim_amount": "2500.00",
                    "claim_type": "auto",
                    "claim_status": "submitted",
                    "customer_id": "CUST-12345",
                    "incident_date": "2023-12-24T08:30:00Z",
                }
            ]
        },
    )

    domain: ClassVar[str] = "insurance"
    entity: ClassVar[str] = "claims"
    key_field: ClassVar[str] = "claim_id"
    event_time_field: ClassVar[str] = "timestamp"

    claim_id: RecordId
    timestamp: UtcDatetime
    policy_number: RecordId
    claim_amount: Money
    claim_type: ClaimType
    claim_status: ClaimStatus
    customer_id: RecordId
    incident_date: UtcDatetime
