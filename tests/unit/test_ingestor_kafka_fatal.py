"""The ingestor's producer is replaced after a fatal error, however librdkafka reports it.

confluent-kafka raises fatal errors from `poll()`/`produce()` as `KafkaException`, not only
through `error_cb`; found by `dataplatform drill kafka`: after the broker's data was lost and
restored, the idempotent producer's sequence numbers no longer matched (fatal
OUT_OF_ORDER_SEQUENCE_NUMBER) and every request answered 503 until the ingestor restarted.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Producer

from dataplatform.settings import IngestorSettings, KafkaSettings
from fastapi_app.app.core.kafka import KafkaPublisher


def _publisher() -> KafkaPublisher:
    publisher = KafkaPublisher(
        KafkaSettings(_env_file=None, bootstrap_servers="127.0.0.1:1"),
        IngestorSettings(_env_file=None, sink="kafka"),
    )
    publisher._producer = Producer({"bootstrap.servers": "127.0.0.1:1"})
    return publisher


def test_replace_producer_fatal_error_raised_by_client() -> None:
    publisher = _publisher()
    failed = publisher._producer
    fatal = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desync", fatal=True)
    publisher._note_fatal(KafkaException(fatal))
    replaced = publisher._replace_failed_producer()
    assert replaced is not failed
    assert publisher._replace_failed_producer() is replaced


def test_keep_producer_non_fatal_error_raised_by_client() -> None:
    publisher = _publisher()
    kept = publisher._producer
    publisher._note_fatal(KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "timed out")))
    assert publisher._replace_failed_producer() is kept
