"""Delta table metrics for Prometheus, read from the tables' own Delta logs with delta-rs.

Freshness (time of each table's last commit), size (active files, bytes, rows), maintenance
debt (files below the small-file size, commits since the last OPTIMIZE, the last OPTIMIZE and
VACUUM) of every table of the lake: bronze, silver, gold and both quarantine tables of each
entity. The lake exporter (`dataplatform run exporter`, a managed service on every track)
registers `DeltaTableCollector` on its `/metrics` and refreshes it in a thread of its own.

A refresh reads only what changed: the open `DeltaTable`s are brought up to date incrementally,
and only commits not yet seen are read from the log (at most `HISTORY_LIMIT` per refresh), so a
busy bronze table (one commit per landing micro-batch) costs a few small reads every refresh.
A scrape never touches S3: it returns the last refresh's numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dataplatform.contracts import ENTITIES
from dataplatform.lake import QUARANTINE_TABLES, Lake, quarantine_path
from dataplatform.products import product_of

if TYPE_CHECKING:
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

#: Most commits read from one table's log per refresh. The first refresh of a long-lived
#: table stops here: commits since OPTIMIZE is then a lower bound until one is seen.
HISTORY_LIMIT = 1000
#: Labels of every per-table series.
LABELS = ("table", "layer", "entity")


@dataclass(frozen=True)
class LakeTable:
    """One Delta table of the lake: its path inside the lake and its labels."""

    path: str
    layer: str
    entity: str


def lake_tables() -> list[LakeTable]:
    """Every table the platform writes, one entry per path (a gold table may serve several)."""
    tables: dict[str, LakeTable] = {}
    for entity in ENTITIES:
        label = f"{entity.domain}.{entity.name}"
        for layer in ("bronze", "silver"):
            path = entity.table_path(layer)
            tables[path] = LakeTable(path, layer, label)
        for writer in QUARANTINE_TABLES:
            path = quarantine_path(entity, writer)
            tables[path] = LakeTable(path, "quarantine", label)
        gold = product_of(entity).gold_table
        tables.setdefault(gold, LakeTable(gold, "gold", label))
    return list(tables.values())


@dataclass
class TableStats:
    """What one refresh knows about one table."""

    version: int
    last_commit_s: float | None
    files: int
    small_files: int
    size_bytes: int
    rows: int
    commits_since_optimize: int
    last_optimize_s: float | None
    last_vacuum_s: float | None


@dataclass
class _History:
    """Facts gathered from the commits read so far (newest first, only new ones each time)."""

    scanned: int = -1
    last_commit_s: float | None = None
    #: Oldest version read: commits before it are unknown when the first read was capped.
    oldest: int | None = None
    optimize_version: int | None = None
    optimize_s: float | None = None
    vacuum_s: float | None = None

    def read(self, table: DeltaTable, version: int) -> None:
        new = version - self.scanned
        if new <= 0:
            return
        for commit in table.history(min(new, HISTORY_LIMIT)):
            at = commit.get("version")
            if not isinstance(at, int) or at <= self.scanned:
                continue
            seconds = float(commit.get("timestamp", 0)) / 1000
            operation = str(commit.get("operation", ""))
            if at == version:
                self.last_commit_s = seconds
            newer = self.optimize_version is None or self.optimize_version < at
            if operation == "OPTIMIZE" and newer:
                self.optimize_version, self.optimize_s = at, seconds
            if operation.startswith("VACUUM") and (self.vacuum_s or 0) < seconds:
                self.vacuum_s = seconds
            self.oldest = at if self.oldest is None else min(self.oldest, at)
        self.scanned = version

    def commits_since_optimize(self, version: int) -> int:
        if self.optimize_version is not None:
            return version - self.optimize_version
        return version - (self.oldest if self.oldest is not None else 0) + 1


def table_stats(table: DeltaTable, history: _History, small_file_bytes: int) -> TableStats:
    """The table's numbers at its loaded version, reading its new commits into `history`."""
    version = table.version()
    history.read(table, version)
    actions = pa.table(table.get_add_actions(flatten=True))
    sizes = actions.column("size_bytes")
    records = actions.column("num_records") if "num_records" in actions.column_names else None
    return TableStats(
        version=version,
        last_commit_s=history.last_commit_s,
        files=actions.num_rows,
        small_files=int(pc.sum(pc.less(sizes, small_file_bytes)).as_py() or 0),
        size_bytes=int(pc.sum(sizes).as_py() or 0),
        rows=int(pc.sum(records).as_py() or 0) if records is not None else 0,
        commits_since_optimize=history.commits_since_optimize(version),
        last_optimize_s=history.optimize_s,
        last_vacuum_s=history.vacuum_s,
    )


#: The per-table gauges: name, help, and the `TableStats` field they show (None: no sample).
_GAUGES = (
    ("delta_table_version", "Latest committed version.", "version"),
    (
        "delta_table_last_commit_timestamp_seconds",
        "When the table's latest version was committed (freshness).",
        "last_commit_s",
    ),
    ("delta_table_files", "Data files in the latest version.", "files"),
    (
        "delta_table_small_files",
        "Data files below the small-file size (what OPTIMIZE would compact).",
        "small_files",
    ),
    ("delta_table_size_bytes", "Bytes of the latest version's files.", "size_bytes"),
    ("delta_table_rows", "Rows in the latest version (from the files' statistics).", "rows"),
    (
        "delta_table_commits_since_optimize",
        "Commits since the last OPTIMIZE (since the oldest commit read if none).",
        "commits_since_optimize",
    ),
    (
        "delta_table_last_optimize_timestamp_seconds",
        "When the last OPTIMIZE was committed (absent: none seen).",
        "last_optimize_s",
    ),
    (
        "delta_table_last_vacuum_timestamp_seconds",
        "When the last VACUUM was committed (absent: none seen).",
        "last_vacuum_s",
    ),
)


@dataclass(eq=False)
class DeltaTableCollector(Collector):
    """A prometheus-client collector of the lake's Delta tables (see the module docstring).

    Attributes:
        lake: The lake whose tables are read.
        small_file_bytes: Active files below this size count as small (OPTIMIZE's work).
    """

    lake: Lake
    small_file_bytes: int
    tables: list[LakeTable] = field(default_factory=lake_tables)
    _open: dict[str, DeltaTable] = field(default_factory=dict)
    _history: dict[str, _History] = field(default_factory=dict)
    _stats: dict[str, TableStats] = field(default_factory=dict)
    _errors: dict[str, int] = field(default_factory=dict)
    _refreshed_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self, path: str) -> DeltaTable | None:
        table = self._open.get(path)
        if table is None:
            table = self.lake.delta_rs(path)
            if table is not None:
                self._open[path] = table
        else:
            table.update_incremental()
        return table

    def refresh(self) -> None:
        """Read every table's new commits and current files; a failing table keeps its last
        numbers and counts an error, the others go on."""
        stats: dict[str, TableStats] = {}
        for spec in self.tables:
            try:
                table = self._load(spec.path)
                if table is None:
                    continue
                history = self._history.setdefault(spec.path, _History())
                stats[spec.path] = table_stats(table, history, self.small_file_bytes)
            except Exception:
                log.warning("cannot read the Delta log of %s", spec.path, exc_info=True)
                self._open.pop(spec.path, None)
                self._errors[spec.path] = self._errors.get(spec.path, 0) + 1
                if spec.path in self._stats:
                    stats[spec.path] = self._stats[spec.path]
        with self._lock:
            self._stats = stats
            self._refreshed_s = time.time()

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Refresh every `interval_s` seconds until `stop` is set."""
        while not stop.is_set():
            self.refresh()
            stop.wait(interval_s)

    def collect(self) -> Iterator[Metric]:
        """The last refresh's numbers (prometheus-client calls this on every scrape)."""
        with self._lock:
            stats = dict(self._stats)
            errors = dict(self._errors)
            refreshed = self._refreshed_s
        families = [
            (GaugeMetricFamily(name, help_text, labels=LABELS), field_name)
            for name, help_text, field_name in _GAUGES
        ]
        by_path = {spec.path: spec for spec in self.tables}
        for path, table_stats_ in sorted(stats.items()):
            spec = by_path[path]
            labels = [spec.path, spec.layer, spec.entity]
            for family, field_name in families:
                value = getattr(table_stats_, field_name)
                if value is not None:
                    family.add_metric(labels, value)
        for family, _ in families:
            yield family
        failures = CounterMetricFamily(
            "delta_table_read_errors",
            "Refreshes that could not read a table's Delta log.",
            labels=["table"],
        )
        for path, count in sorted(errors.items()):
            failures.add_metric([path], count)
        yield failures
        if refreshed is not None:
            yield GaugeMetricFamily(
                "delta_metrics_last_refresh_timestamp_seconds",
                "When the Delta table metrics were last read.",
                value=refreshed,
            )


def start_delta_metrics(
    lake: Lake, *, interval_s: float, small_file_bytes: int, stop: threading.Event
) -> DeltaTableCollector:
    """Register a `DeltaTableCollector` of `lake` with prometheus-client's default registry
    and refresh it in a daemon thread every `interval_s` seconds until `stop` is set."""
    from prometheus_client import REGISTRY

    collector = DeltaTableCollector(lake, small_file_bytes)
    REGISTRY.register(collector)
    threading.Thread(
        target=collector.run, args=(stop, interval_s), name="delta-metrics", daemon=True
    ).start()
    return collector
