"""Kafka admin helpers and producer/consumer configuration."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from dataplatform.contracts import ENTITIES
from dataplatform.settings import KafkaSettings, get_lineage_settings

log = logging.getLogger(__name__)


def platform_topics() -> list[str]:
    """One topic per entity (`<domain>.<entity>.v<N>`) and the OpenLineage events' topic."""
    return [*(entity.topic for entity in ENTITIES), get_lineage_settings().topic]


def ensure_topics(settings: KafkaSettings, topics: list[str] | None = None) -> list[str]:
    """Create the platform's topics if missing; return the ones created. Idempotent."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    wanted = topics or platform_topics()
    metadata = admin.list_topics(timeout=10)
    existing = set(metadata.topics)
    min_isr = settings.topic_min_insync_replicas(len(metadata.brokers))
    missing = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={"min.insync.replicas": str(min_isr)},
        )
        for name in wanted
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def producer_config(settings: KafkaSettings) -> dict[str, object]:
    """Durable producer: idempotent, `acks=all`, bounded delivery time."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
    }
