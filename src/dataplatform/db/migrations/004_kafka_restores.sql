-- Written by `dataplatform backup kafka-restore` once a topic's backup is produced again and read
-- back: the offsets of the lost topic (by its id) that the restore brought back. A client that
-- resends with its Idempotency-Key after a topic was recreated gets its original receipt for a
-- record that landed before the loss or that a restore brought back, and its record published
-- again otherwise (docs/API.md, idempotency; runbooks/kafka_restore_from_backup.md).
CREATE TABLE IF NOT EXISTS kafka_restores (
    -- The lost topic's id, URL-safe as ingest ids and landing_progress name it.
    topic_id text NOT NULL,
    kafka_partition integer NOT NULL,
    first_offset bigint NOT NULL,
    end_offset bigint NOT NULL,
    restored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic_id, kafka_partition, first_offset, end_offset)
);
