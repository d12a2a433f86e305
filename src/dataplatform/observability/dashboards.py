"""The platform's dashboards, defined once: Grafana JSON (grafana-foundation-sdk) and the
static report (`dataplatform report`) are both built from `DASHBOARDS`.

Every panel is one PromQL query over the platform's real metrics (the ingestor's, the lake
exporter's and the landing job's prometheus-client endpoints, the Delta table metrics the lake
exporter reads from the tables' logs, and the SLO recording rules in
observability/rules/slo.rules.yml). No query pads missing series (`or vector(0)`): a panel
without data means the metric is not there, and the acceptance test says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gdashboard
from grafana_foundation_sdk.builders import prometheus as gprometheus
from grafana_foundation_sdk.builders import timeseries as gtimeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

#: The provisioned Prometheus datasource (observability/grafana/provisioning/datasources).
DATASOURCE_UID = "prometheus"
#: Where `dataplatform dashboards write` puts the JSON Grafana provisions.
DASHBOARDS_DIR = Path("observability") / "grafana" / "dashboards"


@dataclass(frozen=True)
class Panel:
    """One chart: a title, its PromQL, how series are named and the unit of the values."""

    title: str
    expr: str
    legend: str = ""
    unit: str = "short"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    """One dashboard with a fixed uid (alerts link to `/d/<uid>`)."""

    uid: str
    title: str
    panels: tuple[Panel, ...]


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        uid="dp-platform-health",
        title="Platform health",
        panels=(
            Panel(
                "Targets up", "up", "{{job}}", description="1 when Prometheus scraped the target"
            ),
            Panel(
                "API 5xx ratio (SLO 99.99 % availability)",
                "ingestor:request_errors:ratio_5m",
                "5xx share",
                unit="percentunit",
            ),
            Panel(
                "Requests by status",
                "sum by (status) (rate(ingestor_http_requests_total[5m]))",
                "{{status}}",
                unit="reqps",
            ),
            Panel(
                "Seconds since the lake exporter's last good poll",
                "time() - exporter_last_success_timestamp_seconds",
                "lake exporter",
                unit="s",
            ),
        ),
    ),
    Dashboard(
        uid="dp-ingestion",
        title="Ingestion",
        panels=(
            Panel(
                "Records by entity and outcome",
                "sum by (entity, outcome) (rate(ingestor_records_total[5m]))",
                "{{entity}} {{outcome}}",
                unit="rps",
            ),
            Panel(
                "Ingest latency p99 (SLO < 5 s)",
                "ingestor:request_duration_seconds:p99_5m",
                "p99",
                unit="s",
            ),
            Panel(
                "Latency p50 by route",
                "histogram_quantile(0.5, sum by (le, route) "
                "(rate(ingestor_http_request_duration_seconds_bucket[5m])))",
                "{{route}}",
                unit="s",
            ),
            Panel(
                "Rejected record ratio (SLO < 0.1 %)",
                "ingestor:records_rejected:ratio_5m",
                "rejected share",
                unit="percentunit",
            ),
            Panel(
                "Batch size p90",
                "histogram_quantile(0.9, sum by (le, entity) "
                "(rate(ingestor_batch_records_bucket[5m])))",
                "{{entity}}",
            ),
            Panel(
                "Sink latency p99",
                "histogram_quantile(0.99, sum by (le, sink, operation) "
                "(rate(ingestor_sink_duration_seconds_bucket[5m])))",
                "{{sink}} {{operation}}",
                unit="s",
            ),
            Panel(
                "Refused by the sink (shed load, timeouts)",
                "sum by (sink, reason) (rate(ingestor_sink_errors_total[5m]))",
                "{{sink}} {{reason}}",
                unit="reqps",
            ),
            Panel("Records in flight", "ingestor_inflight_records", "in flight"),
        ),
    ),
    Dashboard(
        uid="dp-streaming",
        title="Streaming",
        panels=(
            Panel(
                "Consumer lag (SLO < 10,000 records)",
                "platform:consumer_lag_records:max",
                "lag",
            ),
            Panel(
                "Consumer lag by partition",
                "landing_consumer_lag_records",
                "{{topic}} [{{partition}}]",
                description="Kafka log-end offset minus the offset landing committed",
            ),
            Panel(
                "Landing input rate",
                "sum by (entity) (rate(landing_records_total[5m]))",
                "{{entity}}",
                unit="rps",
            ),
            Panel(
                "Micro-batch duration p95",
                "histogram_quantile(0.95, sum by (le, entity) "
                "(rate(landing_batch_duration_seconds_bucket[5m])))",
                "{{entity}}",
                unit="s",
            ),
            Panel(
                "Time to bronze p99 (oldest record of each micro-batch)",
                "histogram_quantile(0.99, sum by (le, entity) "
                "(rate(landing_time_to_bronze_seconds_bucket[5m])))",
                "{{entity}}",
                unit="s",
                description="From the ingestor's Kafka acknowledgement to the bronze commit",
            ),
            Panel(
                "Seconds since the last micro-batch",
                "time() - landing_last_batch_timestamp_seconds",
                "{{entity}}",
                unit="s",
            ),
            Panel("Outbox backlog by entity (starter)", "exporter_backlog_rows", "{{entity}}"),
            # The broker's own JMX metrics (the JMX exporter agent, observability/kafka-jmx.yml).
            Panel(
                "Kafka messages in by topic",
                "sum by (topic) "
                '(rate(kafka_server_brokertopicmetrics_messagesin_total{topic!=""}[5m]))',
                "{{topic}}",
                unit="rps",
                description="Records the broker appended per second (its JMX BrokerTopicMetrics)",
            ),
            Panel(
                "Kafka bytes in (all topics)",
                'rate(kafka_server_brokertopicmetrics_bytesin_total{topic=""}[5m])',
                "{{instance}}",
                unit="Bps",
            ),
            Panel(
                "Kafka under-replicated and offline partitions",
                "kafka_server_replicamanager_underreplicatedpartitions "
                "+ kafka_controller_kafkacontroller_offlinepartitionscount",
                "{{instance}}",
                description="Partitions with fewer in-sync replicas than replicas, or no leader",
            ),
        ),
    ),
    Dashboard(
        uid="dp-lake",
        title="Lake",
        panels=(
            # Bronze has one writer per track: the lake exporter (starter) or landing (Kafka
            # tracks); each panel reads whichever reports, never a padded zero.
            Panel(
                "Rows written to bronze",
                "sum by (entity) (rate(exporter_rows_total[5m])) "
                'or sum by (entity) (rate(landing_records_total{table="bronze"}[5m]))',
                "{{entity}}",
                unit="rps",
            ),
            Panel(
                "Quarantined records",
                'sum by (entity) (rate(landing_records_total{table="quarantine"}[5m]))',
                "{{entity}}",
                unit="rps",
                description="Records landing refused (contract check) into quarantine tables",
            ),
            Panel(
                "Delta commit duration p95",
                "histogram_quantile(0.95, "
                "sum by (le, entity) (rate(exporter_delta_commit_seconds_bucket[5m])) "
                "or sum by (le, entity) "
                '(rate(landing_delta_commit_seconds_bucket{table="bronze"}[5m])))',
                "{{entity}}",
                unit="s",
            ),
            Panel(
                "Bronze batches",
                "sum by (entity, outcome) (increase(exporter_batches_total[1h])) "
                "or sum by (entity) (increase(landing_batches_total[1h]))",
                "{{entity}} {{outcome}}",
            ),
            # The delta_table_* series: the lake exporter reads every table's Delta log
            # (dataplatform.observability.delta_metrics), whichever job wrote the table.
            Panel(
                "Freshness: seconds since each table's last commit",
                "time() - delta_table_last_commit_timestamp_seconds",
                "{{table}}",
                unit="s",
                description="Age of the latest Delta commit of every bronze, silver, gold and "
                "quarantine table",
            ),
            Panel("Data files per table", "delta_table_files", "{{table}}"),
            Panel(
                "Quarantined share of landed records",
                'sum by (entity) (delta_table_rows{table=~"quarantine/landing/.*"}) / '
                '(sum by (entity) (delta_table_rows{table=~"quarantine/landing/.*"}) '
                '+ sum by (entity) (delta_table_rows{layer="bronze"}))',
                "{{entity}}",
                unit="percentunit",
                description="Rows of landing's quarantine tables over them plus bronze's rows "
                "(curation's quarantine holds bronze rows, so it is not counted here)",
            ),
            Panel(
                "Maintenance debt: small files",
                "delta_table_small_files",
                "{{table}}",
                description="Data files below EXPORTER_SMALL_FILE_BYTES: what OPTIMIZE compacts",
            ),
            Panel(
                "Maintenance debt: commits since the last OPTIMIZE",
                "delta_table_commits_since_optimize",
                "{{table}}",
            ),
        ),
    ),
    Dashboard(
        uid="dp-orchestration",
        title="Orchestration",
        panels=(
            Panel(
                "Job success ratio, 1 h (SLO 99 %)",
                "exporter:polls_success:ratio_1h",
                "lake exporter",
                unit="percentunit",
            ),
            Panel(
                "Failed job runs",
                "sum(increase(exporter_errors_total[1h]))",
                "lake exporter",
            ),
            # Airflow's own StatsD metrics (the StatsD exporter, observability/statsd-mapping.yml).
            Panel(
                "DAG runs by outcome, 1 h",
                "sum by (dag_id, state) (increase(airflow_dagrun_duration_seconds_count[1h]))",
                "{{dag_id}} {{state}}",
            ),
            Panel(
                "Task instances finished by state, 1 h",
                "sum by (dag_id, state) (increase(airflow_ti_finish_total[1h]))",
                "{{dag_id}} {{state}}",
            ),
            Panel(
                "Task duration p95, 1 h",
                "histogram_quantile(0.95, sum by (le, dag_id, task_id) "
                "(rate(airflow_task_duration_seconds_bucket[1h])))",
                "{{dag_id}}.{{task_id}}",
                unit="s",
            ),
            Panel(
                "Airflow scheduler heartbeats",
                "rate(airflow_scheduler_heartbeat_total[5m])",
                "scheduler",
                unit="ops",
                description="Zero: the scheduler is not running its loop",
            ),
        ),
    ),
)


def grafana_dashboard(spec: Dashboard) -> dict[str, object]:
    """The Grafana dashboard model of `spec`, built with grafana-foundation-sdk."""
    datasource = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
    builder = (
        gdashboard.Dashboard(spec.title)
        .uid(spec.uid)
        .tags(["dataplatform"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
    )
    for panel in spec.panels:
        builder = builder.with_panel(
            gtimeseries.Panel()
            .title(panel.title)
            .description(panel.description)
            .datasource(datasource)
            .unit(panel.unit)
            .span(12)
            .height(8)
            .with_target(
                gprometheus.Dataquery()
                .expr(panel.expr)
                .legend_format(panel.legend)
                .ref_id("A")
                .datasource(datasource)
            )
        )
    model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    assert isinstance(model, dict)
    return model


def dashboard_json(spec: Dashboard) -> str:
    """The provisioned file's text: stable key order, so regenerating changes nothing."""
    return json.dumps(grafana_dashboard(spec), indent=2, sort_keys=True) + "\n"


def write_dashboards(target: Path) -> list[Path]:
    """Write one `<uid>.json` per dashboard into `target`; return the files written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in DASHBOARDS:
        path = target / f"{spec.uid}.json"
        path.write_text(dashboard_json(spec), encoding="utf-8")
        written.append(path)
    return written
