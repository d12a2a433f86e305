"""Sample records (`dataplatform.samples`, `dataplatform generate`) against the contracts."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from dataplatform import samples
from dataplatform.cli.main import app
from dataplatform.contracts import FinancialTransactionIn, InsuranceClaimIn


def test_valid_samples_pass_the_contracts() -> None:
    rng = random.Random(5)
    for _ in range(500):
        FinancialTransactionIn.model_validate(samples.transaction(rng))
        InsuranceClaimIn.model_validate(samples.claim(rng))


@pytest.mark.parametrize("entity", ["transactions", "claims"])
def test_invalid_samples_fail_on_the_named_field(entity: samples.EntityName) -> None:
    model = FinancialTransactionIn if entity == "transactions" else InsuranceClaimIn
    rng = random.Random(9)
    seen = set()
    for _ in range(200):
        record, defect, field = samples.invalid(entity, rng)
        seen.add(defect)
        with pytest.raises(ValidationError) as caught:
            model.model_validate(record)
        assert {str(err["loc"][0]) for err in caught.value.errors()} == {field}, defect
    defects = samples.TRANSACTION_DEFECTS if entity == "transactions" else samples.CLAIM_DEFECTS
    assert seen == {name for name, _, _ in defects}


def test_generate_writes_ndjson_with_the_requested_share_of_invalid_records() -> None:
    result = CliRunner().invoke(
        app,
        ["generate", "--count", "200", "--invalid", "0.25", "--seed", "1", "--naive-timestamps"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 200
    invalid = 0
    for record in lines:
        model = FinancialTransactionIn if "transaction_id" in record else InsuranceClaimIn
        try:
            model.model_validate(record)
        except ValidationError:
            invalid += 1
    assert 25 <= invalid <= 75
    assert all(not str(r.get("timestamp", "")).endswith("Z") for r in lines)
