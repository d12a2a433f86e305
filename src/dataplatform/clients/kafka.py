"""Kafka admin helpers and producer/consumer configuration.

Every librdkafka client of the platform starts from `client_config`, which carries the
connection and its authentication: plain TCP natively, and on Amazon MSK TLS with IAM
(SASL/OAUTHBEARER) whose tokens are SigV4-signed by AWS's own signer library
(`aws-msk-iam-sasl-signer-python`) from the default credential chain (the Lambda's or the
task's role). The JVM clients (Spark's Kafka source) get the same choice as Java client
properties from `jvm_client_config`, served by MSK's `aws-msk-iam-auth` jar (pyspark_jobs/pom.xml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from dataplatform.contracts import ENTITIES
from dataplatform.settings import KafkaSettings, get_lineage_settings

log = logging.getLogger(__name__)


def platform_topics() -> list[str]:
    """One topic per entity (`<domain>.<entity>.v<N>`) and the OpenLineage events' topic."""
    return [*(entity.topic for entity in ENTITIES), get_lineage_settings().topic]


def msk_iam_token_callback(region: str) -> Callable[[str | None], tuple[str, float]]:
    """librdkafka's `oauth_cb`: a fresh MSK IAM token for `region` on each refresh.

    librdkafka calls it on the client's poll thread when the previous token nears its expiry
    (MSK tokens live 15 minutes); credentials come from the default chain each time, so a
    rotated role session is picked up.
    """
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    def oauth_cb(_config: str | None) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return token, expiry_ms / 1000

    return oauth_cb


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """The connection every librdkafka client (producer, consumer, admin) shares."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
    }
    if settings.msk_iam:
        config["sasl.mechanism"] = "OAUTHBEARER"
        config["oauth_cb"] = msk_iam_token_callback(settings.aws_region)
    return config


#: The JVM side of MSK IAM per SASL mechanism: classes of `software.amazon.msk:aws-msk-iam-auth`.
_JVM_MSK_IAM: dict[str, dict[str, str]] = {
    "OAUTHBEARER": {
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
        ),
        "sasl.login.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler"
        ),
        "sasl.client.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler"
        ),
    },
    "AWS_MSK_IAM": {
        "sasl.mechanism": "AWS_MSK_IAM",
        "sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;",
        "sasl.client.callback.handler.class": (
            "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
        ),
    },
}


def jvm_client_config(settings: KafkaSettings) -> dict[str, str]:
    """The same connection as Java client properties (Spark takes them as `kafka.<name>`).

    The JVM handlers sign with the default credential and region chains of the AWS SDK
    (`AWS_REGION`, which EMR Serverless and Glue set to the job's region).
    """
    config = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
    }
    if settings.msk_iam:
        config.update(_JVM_MSK_IAM[settings.sasl_mechanism])
    return config


def ensure_topics(settings: KafkaSettings, topics: list[str] | None = None) -> list[str]:
    """Create the platform's topics if missing; return the ones created. Idempotent."""
    admin = AdminClient(client_config(settings))
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


def topic_ids(
    settings: KafkaSettings, topics: list[str], *, timeout_s: float = 30
) -> dict[str, str | None]:
    """Kafka's topic id (a UUID that changes when a topic is recreated) per topic name.

    A topic that does not exist maps to None; any other failure raises `KafkaException`.
    """
    admin = AdminClient({**client_config(settings), "log_level": 0})
    futures = admin.describe_topics(TopicCollection(topics), request_timeout=timeout_s)
    found: dict[str, str | None] = {}
    for name, future in futures.items():
        try:
            found[name] = str(future.result().topic_id)
        except KafkaException as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                raise
            found[name] = None
    return found


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """Durable producer: idempotent, `acks=all`, bounded delivery time."""
    return {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
    }
