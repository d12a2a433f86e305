"""`dataplatform generate`: realistic sample transactions and claims, valid or (on request) not.

Writes NDJSON to stdout or a file, or sends the records to the ingestor (`--send`) through the
seed's single-record endpoints or, with `--batch-size` > 1, the NDJSON batch endpoints.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import httpx
import orjson
import typer
from rich.console import Console

from dataplatform import samples
from dataplatform.samples import EntityName
from dataplatform.settings import get_ingestor_settings

err = Console(stderr=True)

Choice = Literal["transactions", "claims", "all"]
_SINGLE_PATHS: dict[EntityName, str] = {
    "transactions": "/ingest-financial-transaction/",
    "claims": "/ingest-insurance-claim/",
}


def _records(
    entity: Choice, count: int, invalid: float, rng: random.Random, naive: bool
) -> Iterator[tuple[EntityName, dict[str, Any]]]:
    kinds: tuple[EntityName, ...] = ("transactions", "claims") if entity == "all" else (entity,)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if invalid and rng.random() < invalid:
            record, _, _ = samples.invalid(kind, rng)
        else:
            record = samples.record(kind, rng)
        if naive:
            # The seed's clients send `datetime.now().isoformat()`: no offset (read as UTC).
            for field in ("timestamp", "incident_date"):
                if isinstance(record.get(field), str) and record[field].endswith("Z"):
                    record[field] = record[field][:-1]
        yield kind, record


class _Pacer:
    """Keeps a steady rate of records per second (0: as fast as possible)."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._next = time.monotonic()

    def wait(self, records: int) -> None:
        if self._rate <= 0:
            return
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next, time.monotonic() - 1.0) + records / self._rate


class _Tally:
    """Counts and where the accepted records landed, per entity."""

    def __init__(self) -> None:
        self.by_entity: dict[str, dict[str, Any]] = {}

    def _entry(self, entity: str) -> dict[str, Any]:
        return self.by_entity.setdefault(
            entity,
            {"sent": 0, "accepted": 0, "duplicates": 0, "rejected": 0, "failed": 0, "landed": {}},
        )

    def receipt(self, entity: str, receipt: dict[str, Any], *, duplicate: bool) -> None:
        entry = self._entry(entity)
        entry["duplicates" if duplicate else "accepted"] += 1
        dest = receipt.get("destination") or {}
        if dest.get("topic") is not None:
            where, position = f"kafka {dest['topic']} partition {dest['partition']}", dest["offset"]
        elif dest.get("outbox_id") is not None:
            where, position = "postgres outbox ids", dest["outbox_id"]
        else:
            return
        low, high = entry["landed"].get(where, (position, position))
        entry["landed"][where] = (min(low, position), max(high, position))

    def count(self, entity: str, key: str, n: int = 1) -> None:
        self._entry(entity)[key] += n

    def summary(self) -> dict[str, Any]:
        out = {}
        for entity, entry in self.by_entity.items():
            landed = {where: f"{low}..{high}" for where, (low, high) in entry["landed"].items()}
            out[entity] = {**entry, "landed": landed}
        return out


def _send(
    client: httpx.Client,
    batches: Iterator[tuple[EntityName, list[dict[str, Any]]]],
    *,
    batch_size: int,
    pacer: _Pacer,
    tally: _Tally,
) -> None:
    for kind, records in batches:
        pacer.wait(len(records))
        tally.count(kind, "sent", len(records))
        try:
            if batch_size <= 1:
                response = client.post(
                    _SINGLE_PATHS[kind],
                    content=orjson.dumps(records[0]),
                    headers={"Content-Type": "application/json"},
                )
            else:
                response = client.post(
                    f"/v1/{kind}/batch",
                    content=b"\n".join(orjson.dumps(r) for r in records),
                    headers={"Content-Type": "application/x-ndjson"},
                )
        except httpx.HTTPError as exc:
            err.print(f"[red]request failed:[/] {exc}")
            tally.count(kind, "failed", len(records))
            continue
        body = response.json() if response.content else {}
        if batch_size <= 1:
            if response.status_code == 200:
                tally.receipt(kind, body, duplicate=bool(body.get("duplicate")))
            elif response.status_code == 422:
                tally.count(kind, "rejected")
            else:
                err.print(f"[yellow]{response.status_code}[/] {body.get('message', '')}")
                tally.count(kind, "failed")
            continue
        if response.status_code not in (200, 422) or "results" not in body:
            err.print(f"[yellow]{response.status_code}[/] {body.get('message', '')}")
            tally.count(kind, "failed", len(records))
            continue
        for result in body["results"]:
            if result["outcome"] == "rejected":
                tally.count(kind, "rejected")
            else:
                tally.receipt(kind, result["receipt"], duplicate=result["outcome"] == "duplicate")


def _grouped(
    records: Iterator[tuple[EntityName, dict[str, Any]]], size: int
) -> Iterator[tuple[EntityName, list[dict[str, Any]]]]:
    pending: dict[EntityName, list[dict[str, Any]]] = {}
    for kind, record in records:
        group = pending.setdefault(kind, [])
        group.append(record)
        if len(group) >= max(size, 1):
            yield kind, group
            pending[kind] = []
    for kind, group in pending.items():
        if group:
            yield kind, group


def generate(
    entity: Annotated[Choice, typer.Option("--entity", "-e", help="Which records")] = "all",
    count: Annotated[int, typer.Option("--count", "-n", min=0, help="How many records")] = 100,
    rate: Annotated[float, typer.Option(min=0, help="Records per second; 0: no limit")] = 0.0,
    invalid: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of records with one defect")
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the random values (timestamps follow the clock)")
    ] = None,
    naive_timestamps: Annotated[
        bool, typer.Option(help="Timestamps without offset, as the seed's clients send them")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="NDJSON file; default stdout")
    ] = None,
    send: Annotated[
        bool, typer.Option(help="POST to the ingestor instead of writing NDJSON")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Ingestor URL; default from INGESTOR_HOST/PORT")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key; default INGESTOR_API_KEY", show_default=False)
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Records per request with --send (>1: NDJSON batch endpoint)")
    ] = 1,
) -> None:
    """Generate sample records: NDJSON out, or sent to the API with a summary of where they went."""
    rng = random.Random(seed)  # noqa: S311 - sample data, reproducible by seed
    pacer = _Pacer(rate)
    records = _records(entity, count, invalid, rng, naive_timestamps)
    if not send:
        target: AbstractContextManager[IO[bytes]] = (
            output.open("wb") if output else nullcontext(sys.stdout.buffer)
        )
        with target as stream:
            for _, record in records:
                pacer.wait(1)
                stream.write(orjson.dumps(record) + b"\n")
        return
    settings = get_ingestor_settings()
    key = api_key or settings.api_key.get_secret_value()
    headers = {"X-API-Key": key} if key else {}
    tally = _Tally()
    started = datetime.now()
    with httpx.Client(base_url=url or settings.base_url, headers=headers, timeout=30) as client:
        _send(
            client, _grouped(records, batch_size), batch_size=batch_size, pacer=pacer, tally=tally
        )
    seconds = (datetime.now() - started).total_seconds()
    summary = tally.summary()
    typer.echo(json.dumps({"seconds": round(seconds, 3), "entities": summary}, indent=2))
    if any(entry["failed"] for entry in summary.values()):
        raise typer.Exit(code=1)
