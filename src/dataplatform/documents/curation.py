"""Curation of documents: claim notes and adjuster reports joined to their claims in silver.

`silver/insurance/claims_with_notes` holds every curated claim (`silver/insurance/claims`, the
Spark curation's table) with the notes and reports written about it (`silver/documents/
documents`, latest version of each), oldest first, as a list column. It is recomputed whole from
both silver tables (DataFusion SQL through delta-rs), so a rerun gives the same table and a
claim or a note curated later shows up at the next run. The write takes the table's commit lock.

It is a curation step: the `curation` DAG runs it (`dataplatform lake join-claim-notes`) after
the claims are curated, as the OpenLineage job `curation.insurance.claims_with_notes`, a child
run of its Airflow task run.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from dataplatform.contracts import CLAIMS
from dataplatform.documents import CLAIMS_WITH_NOTES_TABLE, SILVER_TABLE
from dataplatform.lake import Lake
from dataplatform.lakelock import table_commit_lock
from dataplatform.lineage import JobRun, LineageEmitter, ParentRun, table_dataset
from dataplatform.settings import PostgresSettings

log = logging.getLogger(__name__)

#: The OpenLineage job of the join.
JOB = "curation.insurance.claims_with_notes"

#: Documents about a claim: they carry its `claim_id`.
CLAIM_DOCUMENTS = ("claim_note", "adjuster_report")

_JOIN_SQL = f"""
WITH notes AS (
    SELECT claim_id,
           array_agg(
               named_struct(
                   'document_id', document_id, 'entity', entity, 'timestamp', "timestamp",
                   'body_json', body_json, 'ingest_id', ingest_id
               )
               ORDER BY "timestamp", ingest_seq
           ) AS notes,
           count(*) AS note_count
    FROM documents
    WHERE entity IN ({", ".join(f"'{entity}'" for entity in CLAIM_DOCUMENTS)})
    GROUP BY claim_id
)
SELECT c.*, n.notes, coalesce(n.note_count, 0) AS note_count
FROM claims c LEFT JOIN notes n ON c.claim_id = n.claim_id
ORDER BY c.claim_id
"""


def _plain_strings(type_: pa.DataType) -> pa.DataType:
    """DataFusion answers `string_view`; Delta tables hold plain strings."""
    if pa.types.is_string_view(type_):
        return pa.string()
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return pa.list_(_plain_strings(type_.value_type))
    if pa.types.is_struct(type_):
        return pa.struct([field.with_type(_plain_strings(field.type)) for field in type_])
    return type_


def claims_with_notes(claims: DeltaTable, documents: DeltaTable) -> pa.Table:
    """Every claim with its notes (`notes`: list of structs, oldest first; `note_count`)."""
    query = QueryBuilder().register("claims", claims).register("documents", documents)
    table = pa.table(query.execute(_JOIN_SQL))
    schema = pa.schema([field.with_type(_plain_strings(field.type)) for field in table.schema])
    return table.cast(schema)


def join_claim_notes(lake: Lake, postgres: PostgresSettings) -> int | None:
    """Recompute `silver/insurance/claims_with_notes`; its row count, None until both exist."""
    options = lake.s3.delta_storage_options()
    claims_uri = lake.table("silver", CLAIMS, scheme="s3")
    documents_uri = lake.uri(SILVER_TABLE, scheme="s3")
    if not all(
        DeltaTable.is_deltatable(uri, storage_options=options)
        for uri in (claims_uri, documents_uri)
    ):
        return None
    joined = claims_with_notes(
        DeltaTable(claims_uri, storage_options=options),
        DeltaTable(documents_uri, storage_options=options),
    )
    target = lake.uri(CLAIMS_WITH_NOTES_TABLE, scheme="s3")
    with table_commit_lock(postgres, target):
        write_deltalake(
            target,
            joined,
            mode="overwrite",
            # The claims' columns follow the Spark curation's silver schema as it evolves.
            schema_mode="overwrite",
            storage_options=options,
        )
    log.info("joined claim notes", extra={"fields": {"claims": joined.num_rows}})
    return joined.num_rows


def curate_claim_notes(
    lake: Lake,
    postgres: PostgresSettings,
    *,
    emitter: LineageEmitter,
    parent: ParentRun | None = None,
    root: ParentRun | None = None,
) -> int | None:
    """`join_claim_notes` as a job run with its OpenLineage START and COMPLETE (or FAIL).

    Args:
        lake: The lake holding the tables.
        postgres: Where the commit lock lives.
        emitter: Where the run's events go.
        parent: The run that started it (the Airflow task run), for the parent run facet.
        root: The root of the parent's hierarchy (the DAG run).

    Returns:
        Rows written, None when silver claims or silver documents do not exist yet.
    """
    output = table_dataset(lake, CLAIMS_WITH_NOTES_TABLE)
    run = JobRun(
        emitter,
        JOB,
        inputs=[
            table_dataset(lake, CLAIMS.table_path("silver")),
            table_dataset(lake, SILVER_TABLE),
        ],
        outputs=[output],
        parent=parent,
        root=root,
    )
    run.start()
    try:
        rows = join_claim_notes(lake, postgres)
    except Exception as exc:
        run.fail(exc)
        raise
    run.complete({output.name: rows})
    return rows
