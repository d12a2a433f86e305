-- No row per record on the Kafka path (docs/API.md, receipts): an ingest id is derived from the
-- sink's coordinates and signed (`dataplatform.ingest_ids`); where a record is later comes from
-- the progress landing reports per micro-batch.
DROP TABLE IF EXISTS receipts;

-- An Idempotency-Key binding keeps the receipts it answered with (JSON, in request order).
-- Bindings holding the old UUID ingest ids cannot be replayed: a retry with such a key publishes
-- again (a further version of the same key downstream).
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS receipts jsonb;
DELETE FROM idempotency_keys WHERE state = 'complete' AND receipts IS NULL;
ALTER TABLE idempotency_keys DROP COLUMN IF EXISTS ingest_ids;

-- Starter track: the row id is the ingest id's coordinate; the exporter signs it with the API
-- key that sent the row. Rows written before this migration keep their UUID ingest id.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS principal text;
ALTER TABLE outbox ALTER COLUMN ingest_id DROP NOT NULL;
ALTER TABLE outbox ALTER COLUMN ingest_id TYPE text;

-- Written by landing after each micro-batch: offsets below `end_offset` of the partition are in
-- bronze or in quarantine (Kafka's committed offsets of the batch).
CREATE TABLE IF NOT EXISTS landing_progress (
    topic_id text NOT NULL,
    topic text NOT NULL,
    -- `<domain>.<entity>`
    entity text NOT NULL,
    kafka_partition integer NOT NULL,
    end_offset bigint NOT NULL,
    landed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic_id, kafka_partition, end_offset)
);

-- Records landing refused, with the reason (the quarantine table holds the records themselves).
CREATE TABLE IF NOT EXISTS quarantined_records (
    ingest_id text PRIMARY KEY,
    entity text NOT NULL,
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
