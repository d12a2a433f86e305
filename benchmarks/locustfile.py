"""Locust load test of the ingestor: the seed's scenarios (Appendix H), batches and receipts.

The two seed tasks send what the seed's script sends, quirks included: amounts as JSON numbers
rounded to cents (JPY too), `payment` transactions, `life` and `property` claims, an optional
`merchant_id` sent as `null`, and naive local timestamps. On top of them: NDJSON batches of
transactions, and lookups of the receipts this user was given (`GET /ingest/{id}`).

The API key is `INGESTOR_API_KEY` (from the environment, else from `.env`, where quick_start.sh
writes it). Headless, from the repository root, against the running platform:

    .venv/bin/locust -f benchmarks/locustfile.py --headless -u 20 -r 5 -t 60s \\
        --host http://127.0.0.1:8000

Locust's web UI: the same without `--headless -u -r -t`, then open http://127.0.0.1:8089.
Every non-2xx answer counts as a failure, with the status and the API's message.
"""

from __future__ import annotations

import json
import random
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from locust import HttpUser, between, events, task
from locust.env import Environment

from dataplatform.settings import get_ingestor_settings

#: Records per NDJSON batch request.
BATCH_RECORDS = 100
#: Receipts each simulated user remembers for its lookups.
RECEIPTS_KEPT = 50
#: Test data, not secrets: a plain generator is what the seed's script uses.
_RNG = random.Random()  # noqa: S311


def _stamp() -> str:
    return f"{datetime.now().strftime('%Y%m%d%H%M%S%f')}-{_RNG.randint(1000, 9999)}"


def seed_transaction() -> dict[str, Any]:
    """A financial transaction as the seed's locust script builds it."""
    return {
        "transaction_id": f"FT-{_stamp()}",
        "timestamp": datetime.now().isoformat(),
        "account_id": f"ACC-{_RNG.randint(100000, 999999)}",
        "amount": round(_RNG.uniform(1.0, 10000.0), 2),
        "currency": _RNG.choice(["USD", "EUR", "GBP", "JPY"]),
        "transaction_type": _RNG.choice(["debit", "credit", "transfer", "payment"]),
        "merchant_id": f"MER-{_RNG.randint(100, 999)}" if _RNG.random() > 0.3 else None,
        "category": _RNG.choice(
            [
                "groceries",
                "utilities",
                "salary",
                "entertainment",
                "transport",
                "housing",
                "healthcare",
                "education",
            ]
        ),
    }


def seed_claim() -> dict[str, Any]:
    """An insurance claim as the seed's locust script builds it."""
    return {
        "claim_id": f"IC-{_stamp()}",
        "timestamp": datetime.now().isoformat(),
        "policy_number": f"POL-{_RNG.randint(1000000, 9999999)}",
        "claim_amount": round(_RNG.uniform(500.0, 50000.0), 2),
        "claim_type": _RNG.choice(["auto", "health", "home", "life", "property"]),
        "claim_status": _RNG.choice(["submitted", "under_review", "approved", "rejected", "paid"]),
        "customer_id": f"CUST-{_RNG.randint(10000, 99999)}",
        "incident_date": (datetime.now() - timedelta(days=_RNG.randint(0, 365))).isoformat(),
    }


@events.init.add_listener
def _require_api_key(environment: Environment, **_: Any) -> None:
    if not get_ingestor_settings().api_key.get_secret_value():
        raise SystemExit(
            "INGESTOR_API_KEY is empty: run ./quick_start.sh (it writes one to .env) or export it"
        )


class IngestUser(HttpUser):
    """A client of the platform: the seed's single-record traffic, batches and receipt lookups."""

    wait_time = between(0.1, 0.5)  # the seed's think time

    def on_start(self) -> None:
        """Send the API key with every request; start with no receipts."""
        self.client.headers["X-API-Key"] = get_ingestor_settings().api_key.get_secret_value()
        self.receipts: deque[str] = deque(maxlen=RECEIPTS_KEPT)

    def _post(self, path: str, name: str, **kwargs: Any) -> None:
        with self.client.post(path, name=name, catch_response=True, **kwargs) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:300]}")
                return
            body = response.json()
            results = body.get("results")
            if results is None:
                self.receipts.append(body["ingest_id"])
            elif body.get("rejected"):
                response.failure(f"batch had rejected records: {body.get('message')}")
            else:
                self.receipts.extend(item["receipt"]["ingest_id"] for item in results)

    @task(10)
    def ingest_financial_transaction(self) -> None:
        """The seed's first task."""
        self._post(
            "/ingest-financial-transaction/",
            "/ingest-financial-transaction",
            json=seed_transaction(),
        )

    @task(10)
    def ingest_insurance_claim(self) -> None:
        """The seed's second task."""
        self._post("/ingest-insurance-claim/", "/ingest-insurance-claim", json=seed_claim())

    @task(1)
    def ingest_transaction_batch(self) -> None:
        """An NDJSON batch of the seed's transactions."""
        body = "\n".join(json.dumps(seed_transaction()) for _ in range(BATCH_RECORDS))
        self._post(
            "/v1/transactions/batch",
            "/v1/transactions/batch",
            data=body,
            headers={"Content-Type": "application/x-ndjson"},
        )

    @task(3)
    def look_up_receipt(self) -> None:
        """Where one of this user's records is now."""
        if not self.receipts:
            return
        ingest_id = _RNG.choice(self.receipts)
        with self.client.get(
            f"/ingest/{ingest_id}", name="/ingest/{ingest_id}", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:300]}")
