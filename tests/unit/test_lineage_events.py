"""OpenLineage events of the jobs and the lineage graph built from them (no services)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dataplatform import lineage
from dataplatform.contracts import TRANSACTIONS
from dataplatform.lake import Lake
from dataplatform.settings import LINEAGE_TOPIC, KafkaSettings, LineageSettings, S3Settings

LAKE = Lake(s3=S3Settings(bucket="lakehouse"), prefix="tests/x")
KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:9092,127.0.0.1:9095")


def _row(event: Any) -> dict[str, Any]:
    return lineage.event_row(lineage.event_dict(event))


def _events(
    job: str,
    inputs: list[lineage.DatasetRef],
    outputs: list[lineage.DatasetRef],
    *,
    at: datetime,
    final: lineage.EventType = "COMPLETE",
    parent: lineage.ParentRun | None = None,
) -> list[dict[str, Any]]:
    run_id = str(uuid.uuid4())
    common = {"run_id": run_id, "namespace": "dataplatform", "job": job, "parent": parent}
    return [
        _row(lineage.build_event("START", inputs=inputs, outputs=outputs, event_time=at, **common)),
        _row(
            lineage.build_event(
                final,
                inputs=[ref.counted(10) for ref in inputs],
                outputs=[ref.counted(7) for ref in outputs],
                event_time=at + timedelta(seconds=5),
                **common,
            )
        ),
    ]


def test_name_datasets_follow_openlineage_naming_spec() -> None:
    topic = lineage.topic_dataset(KAFKA, "finance.transactions.v1")
    bronze = lineage.table_dataset(LAKE, TRANSACTIONS.table_path("bronze"))
    assert topic.key == "kafka://127.0.0.1:9092/finance.transactions.v1"
    assert bronze.key == "s3://lakehouse/tests/x/bronze/finance/transactions"
    assert lineage.landing_job(TRANSACTIONS) == "landing.finance.transactions"
    assert lineage.silver_job(TRANSACTIONS) == "curation.finance.transactions.silver"
    assert lineage.gold_job(TRANSACTIONS) == "curation.finance.transactions.gold"


def test_build_event_has_schema_row_count_and_parent_facets() -> None:
    parent = lineage.ParentRun.parse(f"dataplatform/curation.curate_x/{uuid.uuid4()}")
    event = lineage.event_dict(
        lineage.build_event(
            "COMPLETE",
            run_id=str(uuid.uuid4()),
            namespace="dataplatform",
            job="curation.finance.transactions.silver",
            inputs=[lineage.DatasetRef("s3://lakehouse", "bronze/a", (("x", "int"),), 12)],
            outputs=[lineage.DatasetRef("s3://lakehouse", "silver/a", (("y", "string"),), 3)],
            parent=parent,
        )
    )
    assert event["eventType"] == "COMPLETE"
    [source] = event["inputs"]
    assert [(f["name"], f["type"]) for f in source["facets"]["schema"]["fields"]] == [("x", "int")]
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 12
    [sink] = event["outputs"]
    assert sink["outputFacets"]["outputStatistics"]["rowCount"] == 3
    facet = event["run"]["facets"]["parent"]
    assert facet["run"]["runId"] == parent.run_id
    assert (facet["job"]["namespace"], facet["job"]["name"]) == (
        "dataplatform",
        "curation.curate_x",
    )
    # Without a root of its own, the parent is the root of the hierarchy.
    assert facet["root"]["run"]["runId"] == parent.run_id


def test_build_event_fail_carries_error_message() -> None:
    event = lineage.event_dict(
        lineage.build_event(
            "FAIL", run_id=str(uuid.uuid4()), namespace="n", job="j", error="ValueError: boom"
        )
    )
    assert event["run"]["facets"]["errorMessage"]["message"] == "ValueError: boom"


@pytest.mark.parametrize(
    "text", ["", "ns/job", f"ns//{uuid.uuid4()}", "ns/job/not-a-uuid"], ids=repr
)
def test_parse_parent_run_malformed_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"run id|namespace"):
        lineage.ParentRun.parse(text)


def test_parse_parent_run_job_name_with_slash_kept() -> None:
    run_id = str(uuid.uuid4())
    parent = lineage.ParentRun.parse(f"dataplatform/dag/task/{run_id}")
    assert (parent.namespace, parent.name, parent.run_id) == ("dataplatform", "dag/task", run_id)


def test_event_row_lists_datasets_with_row_counts() -> None:
    row = _events(
        "landing.finance.transactions",
        [lineage.topic_dataset(KAFKA, "finance.transactions.v1")],
        [lineage.table_dataset(LAKE, "bronze/finance/transactions")],
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )[1]
    assert row["event_type"] == "COMPLETE"
    assert json.loads(row["outputs"]) == [
        {
            "namespace": "s3://lakehouse",
            "name": "tests/x/bronze/finance/transactions",
            "row_count": 7,
        }
    ]
    assert row["event_time"] == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


def _platform_rows(parent: lineage.ParentRun | None = None) -> list[dict[str, Any]]:
    topic = lineage.topic_dataset(KAFKA, "finance.transactions.v1")
    bronze = lineage.table_dataset(LAKE, "bronze/finance/transactions")
    silver = lineage.table_dataset(LAKE, "silver/finance/transactions")
    gold = lineage.table_dataset(LAKE, "gold/finance/daily_account_totals")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        *_events("landing.finance.transactions", [topic], [bronze], at=at),
        *_events("curation.finance.transactions.silver", [bronze], [silver], at=at, parent=parent),
        *_events("curation.finance.transactions.gold", [silver], [gold], at=at, parent=parent),
    ]


def test_upstream_of_gold_is_topic_bronze_silver_gold() -> None:
    graph = lineage.build_graph(_platform_rows())
    tree = lineage.upstream(graph, "s3://lakehouse/tests/x/gold/finance/daily_account_totals")
    steps = []
    node: dict[str, Any] | None = tree
    while node is not None:
        steps.append((node["dataset"], [job["job"] for job in node["jobs"]]))
        node = node["jobs"][0]["inputs"][0] if node["jobs"] else None
    assert steps == [
        (
            "s3://lakehouse/tests/x/gold/finance/daily_account_totals",
            ["curation.finance.transactions.gold"],
        ),
        (
            "s3://lakehouse/tests/x/silver/finance/transactions",
            ["curation.finance.transactions.silver"],
        ),
        ("s3://lakehouse/tests/x/bronze/finance/transactions", ["landing.finance.transactions"]),
        ("kafka://127.0.0.1:9092/finance.transactions.v1", []),
    ]


def test_downstream_of_topic_reaches_gold() -> None:
    graph = lineage.build_graph(_platform_rows())
    tree = lineage.downstream(graph, "kafka://127.0.0.1:9092/finance.transactions.v1")
    lines = lineage.render_tree(tree, direction="outputs")
    assert lines[0] == "kafka://127.0.0.1:9092/finance.transactions.v1"
    assert "-> dataplatform/landing.finance.transactions: last run" in lines[1]
    assert "COMPLETE" in lines[1]
    assert lines[-1].strip() == "s3://lakehouse/tests/x/gold/finance/daily_account_totals"


def test_build_graph_last_run_is_latest_with_its_state_rows_and_parent() -> None:
    parent = lineage.ParentRun.parse(f"dataplatform/curation.curate_x/{uuid.uuid4()}")
    bronze = lineage.table_dataset(LAKE, "bronze/finance/transactions")
    silver = lineage.table_dataset(LAKE, "silver/finance/transactions")
    early = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        *_events("curation.finance.transactions.silver", [bronze], [silver], at=early),
        *_events(
            "curation.finance.transactions.silver",
            [bronze],
            [silver],
            at=early + timedelta(hours=1),
            final="FAIL",
            parent=parent,
        ),
    ]
    [node] = lineage.build_graph(rows).values()
    run = node.last_run
    assert run.run_id == rows[-1]["run_id"]
    assert run.state == "FAIL"
    assert run.parent_job == "dataplatform/curation.curate_x"
    assert run.parent_run_id == parent.run_id
    assert run.started_at == early + timedelta(hours=1)
    assert run.rows == {}


def test_upstream_cycle_stops() -> None:
    a = lineage.table_dataset(LAKE, "silver/a")
    b = lineage.table_dataset(LAKE, "silver/b")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    graph = lineage.build_graph([*_events("ab", [a], [b], at=at), *_events("ba", [b], [a], at=at)])
    tree = lineage.upstream(graph, a.key)
    assert tree["jobs"][0]["inputs"][0]["jobs"][0]["inputs"] == []


def test_render_config_kafka_transport_names_lineage_topic() -> None:
    from dataplatform.native.airflow import AirflowSettings

    settings = AirflowSettings(openlineage_transport="kafka")
    transport = json.loads(
        settings.openlineage_transport_json(
            kafka_bootstrap_servers="127.0.0.1:9092", topic=LINEAGE_TOPIC
        )
        or "{}"
    )
    assert transport["type"] == "kafka"
    assert transport["topic"] == "openlineage.events.v1"
    assert transport["config"]["bootstrap.servers"] == "127.0.0.1:9092"


def test_transport_config_with_url_sends_to_kafka_and_http() -> None:
    settings = LineageSettings(transport="kafka", url="http://marquez:5000")
    emitter = lineage.LineageEmitter(settings, kafka=KAFKA, sink=None)
    config = emitter.transport_config()
    assert config["type"] == "composite"
    assert config["continue_on_failure"] is True
    kafka, http = config["transports"]["kafka"], config["transports"]["http"]
    assert kafka["topic"] == "openlineage.events.v1"
    assert kafka["config"]["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.1:9095"
    assert http == {"type": "http", "url": "http://marquez:5000", "timeout": 10}


def test_emit_disabled_sends_nothing() -> None:
    emitter = lineage.LineageEmitter.disabled()
    run = lineage.JobRun(emitter, "landing.finance.transactions")
    run.start()
    assert run.state == "START"
    assert emitter._client is None
