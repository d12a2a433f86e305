"""Reading back the jobs' OpenLineage events after a real run (lineage test and the e2e).

Gold's lineage must be topic -> bronze -> silver -> gold with the platform's job names, alike in
the lake's events table (library and `dataplatform lineage`) and on the Kafka topic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from dataplatform import lineage
from dataplatform.lake import Lake
from dataplatform.settings import LINEAGE_TOPIC, KafkaSettings

CLI = str(Path(sys.executable).parent / "dataplatform")


def chain(tree: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """`(dataset, job that wrote it, its last run's state)` from a table back to its source,
    following the first writer at each step."""
    steps: list[tuple[str, str | None, str | None]] = []
    node: dict[str, Any] | None = tree
    while node is not None:
        job = node["jobs"][0] if node["jobs"] else None
        steps.append((node["dataset"], job and job["job"], job and job["last_run"]["state"]))
        node = job["inputs"][0] if job and job["inputs"] else None
    return steps


def read_topic(kafka: KafkaSettings, start: dict[str, int]) -> list[dict[str, Any]]:
    """Every event on the lineage topic since `start` (offsets per partition), in topic order
    within each partition; reads until the topic has been quiet for five seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"tests-lineage-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(LINEAGE_TOPIC, int(p), offset) for p, offset in start.items()])
    events: list[dict[str, Any]] = []
    try:
        idle = 0
        while idle < 5:
            message = consumer.poll(1.0)
            if message is None:
                idle += 1
                continue
            if not message.error():
                events.append(json.loads(message.value()))
    finally:
        consumer.close()
    return events


def topic_events(
    kafka: KafkaSettings, start: dict[str, int], runs: set[str]
) -> set[tuple[str, str]]:
    """`(run id, event type)` of the events of `runs` on the lineage topic since `start`."""
    return {
        (event["run"]["runId"], event["eventType"])
        for event in read_topic(kafka, start)
        if event["run"]["runId"] in runs
    }


def _cli(*args: str) -> str:
    return subprocess.run(
        [CLI, "lineage", *args], capture_output=True, text=True, check=True
    ).stdout


def assert_gold_lineage(
    lake: Lake,
    kafka: KafkaSettings,
    topic_name: str,
    topic_start: dict[str, int],
    *,
    parent: str,
    min_rows: dict[str, int],
) -> None:
    """Gold's (finance) lineage from the events of a landing and a curation run.

    Args:
        lake: The run's lake (its prefix).
        kafka: The brokers.
        topic_name: The topic the landing read.
        topic_start: Offsets of the lineage topic before the run, per partition.
        parent: `<namespace>/<job>/<run id>` given to curation as `--lineage-parent`.
        min_rows: Rows the runs must at least have written to bronze, silver and gold.
    """
    s3 = f"s3://{lake.s3.bucket}/{lake.prefix}"
    gold, silver, bronze = (
        f"{s3}/gold/finance/daily_account_totals",
        f"{s3}/silver/finance/transactions",
        f"{s3}/bronze/finance/transactions",
    )
    topic = f"{lineage.kafka_namespace(kafka)}/{topic_name}"
    expected = [
        (gold, "curation.finance.transactions.gold", "COMPLETE"),
        (silver, "curation.finance.transactions.silver", "COMPLETE"),
        (bronze, "landing.finance.transactions", "COMPLETE"),
        (topic, None, None),
    ]
    graph = lineage.build_graph(lineage.read_events(lake))
    tree = lineage.upstream(graph, gold)
    assert chain(tree) == expected
    gold_job = tree["jobs"][0]
    silver_job = gold_job["inputs"][0]["jobs"][0]
    landing_job = silver_job["inputs"][0]["jobs"][0]
    # Row counts of the runs; the parent run facet names the task run that started curation.
    assert landing_job["last_run"]["rows"][bronze] >= min_rows["bronze"]
    assert silver_job["last_run"]["rows"][silver] >= min_rows["silver"]
    assert gold_job["last_run"]["rows"][gold] >= min_rows["gold"]
    namespace, job, run_id = parent.split("/")
    for step in (silver_job, gold_job):
        assert step["last_run"]["parent_job"] == f"{namespace}/{job}"
        assert step["last_run"]["parent_run_id"] == run_id
    assert landing_job["last_run"]["parent_job"] is None
    down = lineage.downstream(graph, topic)
    assert [item["job"] for item in down["jobs"]] == ["landing.finance.transactions"]

    # `dataplatform lineage` prints the same graph.
    printed = _cli(
        "gold/finance/daily_account_totals",
        "--lake-prefix",
        lake.prefix,
        "--direction",
        "upstream",
        "--json",
    )
    assert chain(json.loads(printed)["upstream"]) == expected
    text = _cli("silver/finance/transactions", "--lake-prefix", lake.prefix)
    assert "-> dataplatform/curation.finance.transactions.gold" in text
    assert "<- dataplatform/landing.finance.transactions" in text

    # Every run's START and COMPLETE went to the Kafka topic as well.
    runs = {step["last_run"]["run_id"] for step in (landing_job, silver_job, gold_job)}
    seen = topic_events(kafka, topic_start, runs)
    assert seen == {(run, kind) for run in runs for kind in ("START", "COMPLETE")}
