-- `GET /ingest/{id}`'s `curated` stage (docs/API.md, receipts): a record is curated once a
-- curation run has processed the bronze Delta version that holds it. Bronze tables are named
-- by their URI (`s3://<bucket>/[<prefix>/]bronze/<domain>/<entity>`): versions are only
-- comparable within one table, and tests land into tables of their own under a lake prefix.

-- The bronze table and the version (or a later one) a landing micro-batch appended to; null
-- when the batch appended nothing (a batch replayed after a crash, already in bronze): the
-- receipt then takes the version of the next report that names one.
ALTER TABLE landing_progress ADD COLUMN IF NOT EXISTS bronze_table text;
ALTER TABLE landing_progress ADD COLUMN IF NOT EXISTS bronze_version bigint;

-- Starter track: the exporter names the bronze table with the version it already records.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS bronze_table text;

-- Written by curation after each entity's run: every bronze version up to `bronze_version`
-- has been processed into silver (and gold) at `curated_at`.
CREATE TABLE IF NOT EXISTS curation_progress (
    bronze_table text NOT NULL,
    -- `<domain>.<entity>`
    entity text NOT NULL,
    bronze_version bigint NOT NULL,
    curated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bronze_table, bronze_version)
);
