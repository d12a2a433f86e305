-- `GET /ingest/{id}` of a record curation quarantined (docs/API.md, receipts): curation writes
-- the ingest ids and reasons of the records it refused (a `drop` expectation, a contract check)
-- in the same transaction as the `curation_progress` row of its run, so a receipt never says
-- `curated` for one of them. `job` says who refused the record: landing (the rows written
-- before this migration) or curation.
ALTER TABLE quarantined_records ADD COLUMN IF NOT EXISTS job text NOT NULL DEFAULT 'landing'
    CHECK (job IN ('landing', 'curation'));
