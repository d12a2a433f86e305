"""Delta checkpoints of the tables landing appends to, written beside the commits, not in them.

Delta writes a table's checkpoint (its whole state as Parquet) inside the commit whose version
is a multiple of `delta.checkpointInterval`. On bronze, which gets a commit per landing
micro-batch, that commit then took 4.6-6.0 s instead of 1.4 s, and every record of that batch
and of the backlog behind it waited for it: the p99 of ack to bronze (docs/BENCHMARKS.md).

So bronze and the landing quarantine carry an interval no commit reaches
(`INLINE_CHECKPOINTS_OFF`), and their writers write the checkpoint themselves after a commit
whose version is a multiple of `LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL`: landing from a
background thread (`pyspark_jobs.landing.CheckpointThread`), the starter track's exporter after
its commit, outside the table's commit lock. A checkpoint is not a commit: it adds
`<version>.checkpoint.parquet` and rewrites `_last_checkpoint`, both derived from commits that
are already final, so it needs no lock and cannot conflict with a later commit. A checkpoint
that is never written (the writer stopped first, or another job made that version) only means
readers replay up to one more interval of small JSON commits.
"""

from __future__ import annotations

import logging

from deltalake import DeltaTable

logger = logging.getLogger(__name__)

#: `delta.checkpointInterval` of bronze and the landing quarantine: no version reaches a
#: multiple of it, so Delta (Spark or delta-rs) never checkpoints them inside a commit.
INLINE_CHECKPOINTS_OFF = 2**31 - 1


def checkpoint_due(version: int, every: int, *, previous: int | None = None) -> bool:
    """Whether the commit that made `version` is followed by a checkpoint (every `every`).

    Args:
        version: The version the writer's commit made.
        every: `LAKEHOUSE_BRONZE_CHECKPOINT_INTERVAL`.
        previous: The version of the same writer's previous commit, if it knows one: then a
            multiple of `every` made by another job's commit in between (OPTIMIZE) makes this
            commit due too, instead of being missed.
    """
    if previous is None:
        return version > 0 and version % every == 0
    return version // every > previous // every


def write_checkpoint(uri: str, version: int, storage_options: dict[str, str]) -> None:
    """Write the checkpoint of the Delta table at `uri` as of `version`, then expire old logs.

    The expiry is what Delta does after its own checkpoints: commit files older than the
    table's `delta.logRetentionDuration` (30 days by default) and already covered by a
    checkpoint are deleted.

    Args:
        uri: The table (`s3://...`).
        version: A committed version of it.
        storage_options: delta-rs storage options (`S3Settings.delta_storage_options`).
    """
    table = DeltaTable(uri, version=version, storage_options=storage_options)
    table.create_checkpoint()
    table.cleanup_metadata()
    logger.info("%s: checkpoint written at version %d", uri, version)
