"""OpenLineage run events of the platform's jobs, their Delta copy and the lineage graph.

The Spark jobs describe each run (START, then COMPLETE or FAIL) with its input and output
datasets, their schema and row counts, through `openlineage-python`:

* to the Kafka topic `openlineage.events.v1` (the OpenLineage Kafka transport), which
  Marquez and OpenMetadata's OpenLineage connector read in compose;
* and, unless `LINEAGE_DELTA=false`, to the Delta table `_lineage/openlineage_events` of the
  lake, appended with delta-rs under the table's commit lock (`dataplatform.lakelock`): every
  job run is a writer of that table.

`dataplatform lineage TABLE` reads the Delta table and prints the table's upstream and
downstream graph with the last run of each job.

Names follow the OpenLineage naming spec: Kafka topics are datasets in the namespace
`kafka://<first bootstrap server>`, lake tables in `s3://<bucket>` named by their path in the
bucket; jobs live in one namespace (`LINEAGE_NAMESPACE`, the Airflow provider's too) under
stable names: `landing.<domain>.<entity>`, `curation.<domain>.<entity>.silver` and
`curation.<domain>.<entity>.gold`. A job started by an Airflow task is given the task's run
(`--lineage-parent <namespace>/<job>/<run id>`, the provider's `lineage_parent_id` macro) and
records it in the OpenLineage parent run facet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from dataplatform.contracts import Entity
from dataplatform.lake import Lake, QuarantineTable, quarantine_path
from dataplatform.lakelock import table_commit_lock
from dataplatform.products import product_of
from dataplatform.settings import (
    KafkaSettings,
    LineageSettings,
    PostgresSettings,
    get_lineage_settings,
)

log = logging.getLogger(__name__)

#: The lake table holding a copy of every event.
EVENTS_TABLE = "_lineage/openlineage_events"
#: `producer` of the events: who wrote them (OpenLineage wants a URI).
PRODUCER = "https://github.com/dataplatform/dataplatform/tree/main/src/dataplatform/lineage.py"

EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL"]

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("job_namespace", pa.string(), nullable=False),
        pa.field("job_name", pa.string(), nullable=False),
        pa.field("parent_run_id", pa.string()),
        pa.field("parent_job_namespace", pa.string()),
        pa.field("parent_job_name", pa.string()),
        # `[{"namespace", "name", "row_count"}]` as JSON: enough to build the graph without
        # parsing whole events.
        pa.field("inputs", pa.string(), nullable=False),
        pa.field("outputs", pa.string(), nullable=False),
        # The whole OpenLineage event as sent to Kafka.
        pa.field("event", pa.string(), nullable=False),
    ]
)


# --------------------------------------------------------------------------- names


def kafka_namespace(kafka: KafkaSettings) -> str:
    """`kafka://<host:port>` of the first bootstrap server (OpenLineage's naming spec)."""
    return f"kafka://{kafka.bootstrap_servers.split(',')[0].strip()}"


def s3_namespace(lake: Lake) -> str:
    """`s3://<bucket>`: the namespace of every lake table."""
    return f"s3://{lake.s3.bucket}"


def landing_job(entity: Entity) -> str:
    """The landing job of an entity: topic -> bronze."""
    return f"landing.{entity.domain}.{entity.name}"


def silver_job(entity: Entity) -> str:
    """The curation step bronze -> silver of an entity."""
    return f"curation.{entity.domain}.{entity.name}.silver"


def gold_job(entity: Entity) -> str:
    """The curation step silver -> gold of an entity."""
    return f"curation.{entity.domain}.{entity.name}.gold"


@dataclass(frozen=True)
class DatasetRef:
    """One input or output of a run: where it is, its columns and the rows the run moved.

    Attributes:
        namespace: `kafka://host:port` or `s3://bucket`.
        name: The topic, or the table's path in the bucket.
        fields: `(column, type)` pairs of its schema.
        row_count: Rows read (input) or written (output) by the run; None when not counted.
    """

    namespace: str
    name: str
    fields: tuple[tuple[str, str], ...] = ()
    row_count: int | None = None

    @property
    def key(self) -> str:
        """`<namespace>/<name>`: how the graph names the dataset."""
        return f"{self.namespace}/{self.name}"

    def counted(self, rows: int | None) -> DatasetRef:
        """The same dataset with `rows` as its row count."""
        return replace(self, row_count=rows)


def topic_dataset(
    kafka: KafkaSettings, topic: str, fields: Sequence[tuple[str, str]] = ()
) -> DatasetRef:
    """A Kafka topic as a dataset."""
    return DatasetRef(kafka_namespace(kafka), topic, tuple(fields))


def table_dataset(lake: Lake, table: str, fields: Sequence[tuple[str, str]] = ()) -> DatasetRef:
    """A lake table (`<layer>/<domain>/<entity>`, under the lake's prefix) as a dataset."""
    return DatasetRef(s3_namespace(lake), lake.relative(table), tuple(fields))


def gold_table(entity: Entity) -> str:
    """`gold/<domain>/<product>`: the gold product fed by an entity."""
    return f"gold/{entity.domain}/{product_of(entity).gold}"


def quarantine_dataset(
    lake: Lake, entity: Entity, table: QuarantineTable, fields: Sequence[tuple[str, str]] = ()
) -> DatasetRef:
    """The quarantine table a job writes as a dataset."""
    return table_dataset(lake, quarantine_path(entity, table), fields)


@dataclass(frozen=True)
class ParentRun:
    """The run that started a job (an Airflow task run), for the parent run facet."""

    namespace: str
    name: str
    run_id: str

    @classmethod
    def parse(cls, text: str) -> ParentRun:
        """Read `<namespace>/<job name>/<run id>` (the Airflow provider's `lineage_parent_id`).

        The job name may itself contain `/`; the namespace is the first part and the run id
        the last.

        Raises:
            ValueError: Not three parts, or the run id is not a UUID.
        """
        import uuid

        namespace, _, rest = text.strip().partition("/")
        name, _, run_id = rest.rpartition("/")
        if not namespace or not name or not run_id:
            raise ValueError(f"not <namespace>/<job>/<run id>: {text!r}")
        try:
            uuid.UUID(run_id)
        except ValueError:
            raise ValueError(f"the run id of {text!r} is not a UUID") from None
        return cls(namespace, name, run_id)


# --------------------------------------------------------------------------- events


def _dataset(ref: DatasetRef, *, output: bool) -> Any:
    """An input or output dataset of an event: the schema facet, and the row count if known.

    Inputs carry the row count in the input-statistics facet, outputs in the output-statistics
    facet; everything else is the same.
    """
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        input_statistics_input_dataset,
        output_statistics_output_dataset,
        schema_dataset,
    )

    facets: dict[str, Any] = {}
    if ref.fields:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=name, type=kind)
                for name, kind in ref.fields
            ]
        )
    statistics: dict[str, Any] = {}
    if output:
        if ref.row_count is not None:
            statistics["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=ref.row_count
                )
            )
        return OutputDataset(
            namespace=ref.namespace, name=ref.name, facets=facets, outputFacets=statistics
        )
    if ref.row_count is not None:
        statistics["inputStatistics"] = (
            input_statistics_input_dataset.InputStatisticsInputDatasetFacet(rowCount=ref.row_count)
        )
    return InputDataset(
        namespace=ref.namespace, name=ref.name, facets=facets, inputFacets=statistics
    )


def build_event(
    event_type: EventType,
    *,
    run_id: str,
    namespace: str,
    job: str,
    inputs: Sequence[DatasetRef] = (),
    outputs: Sequence[DatasetRef] = (),
    parent: ParentRun | None = None,
    root: ParentRun | None = None,
    error: str | None = None,
    event_time: datetime | None = None,
) -> Any:
    """One OpenLineage run event (`openlineage.client.event_v2.RunEvent`).

    Datasets carry the schema facet and, when counted, the input/output statistics facets;
    the run carries the parent facet (with the root run, when known), the job the job-type
    facet (a Spark batch job) and a failed run the error-message facet.
    """
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job, parent_run

    run_facets: dict[str, Any] = {}
    if parent is not None:
        top = root or parent
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=top.run_id),
                job=parent_run.RootJob(namespace=top.namespace, name=top.name),
            ),
        )
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error[:4000], programmingLanguage="PYTHON"
        )
    return RunEvent(
        eventType=RunState[event_type],
        eventTime=(event_time or datetime.now(UTC)).isoformat(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(
            namespace=namespace,
            name=job,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="SPARK", jobType="JOB"
                )
            },
        ),
        inputs=[_dataset(ref, output=False) for ref in inputs],
        outputs=[_dataset(ref, output=True) for ref in outputs],
        producer=PRODUCER,
    )


def event_dict(event: Any) -> dict[str, Any]:
    """The event as the JSON object sent on the wire."""
    from openlineage.client.serde import Serde

    result: dict[str, Any] = Serde.to_dict(event)
    return result


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """The `_lineage/openlineage_events` row of one event (as `event_dict` returns it)."""
    parent = (event.get("run", {}).get("facets") or {}).get("parent") or {}

    def refs(kind: str, statistics: str) -> str:
        return json.dumps(
            [
                {
                    "namespace": item["namespace"],
                    "name": item["name"],
                    "row_count": (item.get(f"{kind}Facets") or {})
                    .get(statistics, {})
                    .get("rowCount"),
                }
                for item in event.get(f"{kind}s") or []
            ]
        )

    return {
        "event_time": datetime.fromisoformat(event["eventTime"]).astimezone(UTC),
        "event_type": event["eventType"],
        "run_id": event["run"]["runId"],
        "job_namespace": event["job"]["namespace"],
        "job_name": event["job"]["name"],
        "parent_run_id": (parent.get("run") or {}).get("runId"),
        "parent_job_namespace": (parent.get("job") or {}).get("namespace"),
        "parent_job_name": (parent.get("job") or {}).get("name"),
        "inputs": refs("input", "inputStatistics"),
        "outputs": refs("output", "outputStatistics"),
        "event": json.dumps(event, sort_keys=True),
    }


class DeltaEventSink:
    """Appends events to the lake's `_lineage/openlineage_events` table (delta-rs).

    Any job run may write it at the same time as another, so every append holds the table's
    commit lock (ARCHITECTURE.md: one writer per Delta table at a time).
    """

    def __init__(self, lake: Lake, postgres: PostgresSettings) -> None:
        self.lake = lake
        self.postgres = postgres

    @property
    def uri(self) -> str:
        """The table's `s3://` URI."""
        return self.lake.uri(EVENTS_TABLE, scheme="s3")

    def append(self, event: dict[str, Any]) -> None:
        """Append one event (as `event_dict` returns it)."""
        from deltalake import write_deltalake

        table = pa.Table.from_pylist([event_row(event)], schema=EVENTS_SCHEMA)
        with table_commit_lock(self.postgres, self.uri):
            write_deltalake(
                self.uri,
                table,
                mode="append",
                storage_options=self.lake.s3.delta_storage_options(),
            )


class LineageEmitter:
    """Sends the run events of one job process to the OpenLineage transport and Delta.

    Lineage never stops a job: a failed send is logged as an error and the job carries on.
    """

    def __init__(
        self,
        settings: LineageSettings,
        *,
        kafka: KafkaSettings,
        sink: DeltaEventSink | None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.sink = sink
        self._client: Any = None

    @classmethod
    def from_settings(
        cls,
        lake: Lake,
        *,
        kafka: KafkaSettings | None = None,
        postgres: PostgresSettings | None = None,
        settings: LineageSettings | None = None,
    ) -> LineageEmitter:
        """The emitter of the current `LINEAGE_*` settings, writing next to `lake`'s tables."""
        from dataplatform.settings import get_kafka_settings, get_postgres_settings

        settings = settings or get_lineage_settings()
        kafka = kafka or get_kafka_settings()
        sink = None
        if settings.delta and settings.transport != "disabled":
            sink = DeltaEventSink(lake, postgres or get_postgres_settings())
        return cls(settings, kafka=kafka, sink=sink)

    @classmethod
    def disabled(cls) -> LineageEmitter:
        """An emitter that sends nothing (jobs called from tests and tools)."""
        return cls(LineageSettings(transport="disabled"), kafka=KafkaSettings(), sink=None)

    @property
    def enabled(self) -> bool:
        """False when `LINEAGE_TRANSPORT=disabled`."""
        return self.settings.transport != "disabled"

    def transport_config(self) -> dict[str, Any]:
        """The OpenLineage client's `transport` config: Kafka or the console, plus HTTP."""
        if self.settings.transport == "kafka":
            main: dict[str, Any] = {
                "type": "kafka",
                "topic": self.settings.topic,
                "config": {
                    "bootstrap.servers": self.kafka.bootstrap_servers,
                    "acks": "all",
                    "enable.idempotence": "true",
                    # Bounded: an unreachable broker delays the job by this, not 5 minutes.
                    "message.timeout.ms": "30000",
                },
                "flush": True,
            }
        else:
            main = {"type": "console"}
        if not self.settings.url:
            return main
        return {
            "type": "composite",
            # Marquez being down must not keep the event from the topic, nor the reverse.
            "continue_on_failure": True,
            "transports": {
                self.settings.transport: main,
                "http": {"type": "http", "url": self.settings.url, "timeout": 10},
            },
        }

    def _transport_client(self) -> Any:
        if self._client is None:
            from openlineage.client import OpenLineageClient

            if self.settings.transport == "kafka":
                from dataplatform.clients.kafka import ensure_topics

                # The platform creates the topic with its others; a job started against a
                # broker set up before lineage existed creates it rather than losing events.
                ensure_topics(self.kafka, [self.settings.topic])
            self._client = OpenLineageClient(config={"transport": self.transport_config()})
        return self._client

    def emit(self, event: Any) -> None:
        """Send one event (built by `build_event`) everywhere it goes; log, never raise."""
        if not self.enabled:
            return
        try:
            self._transport_client().emit(event)
        except Exception:
            log.exception("OpenLineage event of %s not sent to %s", event.job.name, "Kafka")
        if self.sink is not None:
            try:
                self.sink.append(event_dict(event))
            except Exception:
                log.exception("OpenLineage event of %s not written to %s", event.job.name, "Delta")

    def close(self) -> None:
        """Flush and close the transport."""
        if self._client is not None:
            self._client.transport.close(timeout=30)


@dataclass
class JobRun:
    """One run of a job: emits START, then COMPLETE or FAIL with the datasets it moved.

    Attributes:
        emitter: Where the events go.
        job: The job's stable name (`landing_job`, `silver_job`, `gold_job`).
        inputs: What it reads; row counts may be filled in before it completes.
        outputs: What it writes.
        parent: The Airflow task run that started it, if any.
        root: The root of the parent's hierarchy (the DAG run), if known.
    """

    emitter: LineageEmitter
    job: str
    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetRef] = field(default_factory=list)
    parent: ParentRun | None = None
    root: ParentRun | None = None
    run_id: str = ""
    #: The last event sent: "" before START.
    state: str = ""

    def __post_init__(self) -> None:
        from openlineage.client.uuid import generate_new_uuid

        self.run_id = self.run_id or str(generate_new_uuid())

    def _emit(self, event_type: EventType, *, error: str | None = None) -> None:
        self.emitter.emit(
            build_event(
                event_type,
                run_id=self.run_id,
                namespace=self.emitter.settings.namespace,
                job=self.job,
                inputs=self.inputs,
                outputs=self.outputs,
                parent=self.parent,
                root=self.root,
                error=error,
            )
        )
        self.state = event_type

    def start(self) -> None:
        """The run began."""
        self._emit("START")

    def complete(self, counts: Mapping[str, int | None] | None = None) -> None:
        """The run succeeded.

        Args:
            counts: Rows the run read from or wrote to each dataset, by dataset name.
        """
        counts = counts or {}
        self.inputs = [ref.counted(counts.get(ref.name, ref.row_count)) for ref in self.inputs]
        self.outputs = [ref.counted(counts.get(ref.name, ref.row_count)) for ref in self.outputs]
        self._emit("COMPLETE")

    def fail(self, error: BaseException) -> None:
        """The run failed with `error`."""
        self._emit("FAIL", error=f"{type(error).__name__}: {error}")


# --------------------------------------------------------------------------- the graph

#: Which event of a run tells its state when two share a timestamp: the later stage.
_STAGE = {"START": 0, "RUNNING": 1, "COMPLETE": 2, "ABORT": 2, "FAIL": 2}


@dataclass(frozen=True)
class LastRun:
    """The last run of a job, as its events tell it."""

    run_id: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    parent_job: str | None
    parent_run_id: str | None
    #: Rows read/written per dataset key, from the run's COMPLETE event.
    rows: dict[str, int | None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "run_id": self.run_id,
            "state": self.state,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "parent_job": self.parent_job,
            "parent_run_id": self.parent_run_id,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class JobNode:
    """A job of the graph: what its last run read and wrote."""

    namespace: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    last_run: LastRun


def read_events(lake: Lake) -> list[dict[str, Any]]:
    """The rows of the lake's `_lineage/openlineage_events` table (empty when missing)."""
    table = lake.delta_rs(EVENTS_TABLE)
    if table is None:
        return []
    rows: list[dict[str, Any]] = table.to_pyarrow_table(
        columns=[
            "event_time",
            "event_type",
            "run_id",
            "job_namespace",
            "job_name",
            "parent_run_id",
            "parent_job_namespace",
            "parent_job_name",
            "inputs",
            "outputs",
        ]
    ).to_pylist()
    return rows


def build_graph(rows: Sequence[dict[str, Any]]) -> dict[str, JobNode]:
    """The jobs, keyed `<namespace>/<name>`, each with the datasets of its last run.

    Args:
        rows: Event rows (`read_events`).
    """
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        job = f"{row['job_namespace']}/{row['job_name']}"
        by_run.setdefault((job, row["run_id"]), []).append(row)
    latest: dict[str, list[dict[str, Any]]] = {}
    for (job, _), events in by_run.items():
        events.sort(key=lambda row: (row["event_time"], _STAGE.get(row["event_type"], 0)))
        current = latest.get(job)
        if current is None or events[-1]["event_time"] > current[-1]["event_time"]:
            latest[job] = events
    graph = {}
    for job, events in latest.items():
        inputs: dict[str, None] = {}
        outputs: dict[str, None] = {}
        rows_moved: dict[str, int | None] = {}
        for row in events:
            for kind, seen in (("inputs", inputs), ("outputs", outputs)):
                for ref in json.loads(row[kind]):
                    key = f"{ref['namespace']}/{ref['name']}"
                    seen[key] = None
                    if row["event_type"] == "COMPLETE":
                        rows_moved[key] = ref.get("row_count")
        last, first = events[-1], events[0]
        parent = (
            f"{last['parent_job_namespace']}/{last['parent_job_name']}"
            if last["parent_job_name"]
            else None
        )
        graph[job] = JobNode(
            namespace=last["job_namespace"],
            name=last["job_name"],
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            last_run=LastRun(
                run_id=last["run_id"],
                state=last["event_type"],
                started_at=first["event_time"] if first["event_type"] == "START" else None,
                ended_at=last["event_time"] if _STAGE.get(last["event_type"]) == 2 else None,
                parent_job=parent,
                parent_run_id=last["parent_run_id"],
                rows=rows_moved,
            ),
        )
    return graph


def upstream(
    graph: dict[str, JobNode], dataset: str, *, _path: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The tree of what `dataset` (a key, `<namespace>/<name>`) is made from.

    Returns:
        `{"dataset": key, "jobs": [{"job", "namespace", "last_run", "inputs": [tree...]}]}`:
        the jobs whose last run wrote the dataset, each with the trees of its inputs.
    """
    path = _path | {dataset}
    return {
        "dataset": dataset,
        "jobs": [
            {
                "job": node.name,
                "namespace": node.namespace,
                "last_run": node.last_run.as_dict(),
                "inputs": [
                    upstream(graph, key, _path=path) for key in node.inputs if key not in path
                ],
            }
            for node in graph.values()
            if dataset in node.outputs
        ],
    }


def downstream(
    graph: dict[str, JobNode], dataset: str, *, _path: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The tree of what is made from `dataset`: `{"dataset", "jobs": [{..., "outputs"}]}`."""
    path = _path | {dataset}
    return {
        "dataset": dataset,
        "jobs": [
            {
                "job": node.name,
                "namespace": node.namespace,
                "last_run": node.last_run.as_dict(),
                "outputs": [
                    downstream(graph, key, _path=path) for key in node.outputs if key not in path
                ],
            }
            for node in graph.values()
            if dataset in node.inputs
        ],
    }


def render_tree(tree: dict[str, Any], *, direction: Literal["inputs", "outputs"]) -> list[str]:
    """The lines `dataplatform lineage` prints for an `upstream`/`downstream` tree."""
    arrow = "<-" if direction == "inputs" else "->"
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        lines.append(f"{'    ' * depth}{node['dataset']}")
        for job in node["jobs"]:
            run = job["last_run"]
            rows = ", ".join(
                f"{key.split('://', 1)[-1].split('/', 1)[-1]} {count}"
                for key, count in run["rows"].items()
                if count is not None
            )
            parent = (
                f", parent {run['parent_job']} run {run['parent_run_id']}"
                if run["parent_job"]
                else ""
            )
            lines.append(
                f"{'    ' * depth}  {arrow} {job['namespace']}/{job['job']}: last run "
                f"{run['run_id']} {run['state']} at {run['ended_at'] or run['started_at']}"
                f"{f' (rows: {rows})' if rows else ''}{parent}"
            )
            for child in job[direction]:
                walk(child, depth + 1)

    walk(tree, 0)
    return lines
