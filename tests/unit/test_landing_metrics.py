"""The landing job's metrics that need no Spark or Kafka: offsets from progress reports, and
the lag collector's registration (which must not contact Kafka)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from dataplatform.contracts import TRANSACTIONS
from pyspark_jobs import landing_metrics
from pyspark_jobs.landing_metrics import ConsumerLag, end_offsets, progress_sources


def test_parse_end_offsets_kafka_source_progress() -> None:
    source = SimpleNamespace(endOffset='{"finance.transactions.v1": {"0": 12, "2": 7, "1": 0}}')

    assert end_offsets(source) == {"finance.transactions.v1": {0: 12, 1: 0, 2: 7}}


def test_parse_end_offsets_last_progress_dict() -> None:
    progress = {"sources": [{"endOffset": {"finance.transactions.v1": {"1": 3, "0": 5}}}]}

    (source,) = progress_sources(progress)

    assert end_offsets(source) == {"finance.transactions.v1": {0: 5, 1: 3}}
    assert progress_sources(None) == []


def test_parse_end_offsets_missing_or_not_kafka_is_empty() -> None:
    assert end_offsets(SimpleNamespace(endOffset=None)) == {}
    assert end_offsets(SimpleNamespace(endOffset="not json")) == {}
    assert end_offsets(SimpleNamespace(endOffset="42")) == {}
    assert end_offsets(SimpleNamespace()) == {}


def test_register_consumer_lag_before_any_batch_exposes_no_sample() -> None:
    registry = CollectorRegistry()
    registry.register(ConsumerLag())  # describe(): no Kafka connection at registration

    text = generate_latest(registry).decode()

    assert "# TYPE landing_consumer_lag_records gauge" in text
    assert "landing_consumer_lag_records{" not in text


def test_declare_entity_creates_zero_series_for_both_tables() -> None:
    landing_metrics.declare_entity(TRANSACTIONS)

    text = generate_latest().decode()

    for table in ("bronze", "quarantine"):
        assert f'landing_records_total{{entity="finance.transactions",table="{table}"}}' in text
    assert 'landing_batches_total{entity="finance.transactions"}' in text
