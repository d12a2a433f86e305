-- Edge deduplication is by Idempotency-Key only (docs/API.md, idempotency): every accepted
-- record is a new receipt, identical payloads included, so a record version is no longer unique.
ALTER TABLE receipts DROP CONSTRAINT IF EXISTS receipts_record_version;

-- An Idempotency-Key binding is a small state machine: `in_progress` from before publishing
-- until the sink acknowledged (then `complete` with the request's receipts, in order), deleted
-- when the request failed (4xx/503) so a corrected retry may use the key again.
ALTER TABLE idempotency_keys
    ADD COLUMN state text NOT NULL DEFAULT 'complete'
        CHECK (state IN ('in_progress', 'complete')),
    ADD COLUMN ingest_ids uuid[];
-- Bindings made before this migration kept no receipts and cannot be replayed: a retry with
-- such a key publishes again (a further version of the same key downstream).
DELETE FROM idempotency_keys WHERE ingest_ids IS NULL;
