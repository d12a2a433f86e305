-- Ingest tables, shared by the ingestor (both tracks) and the starter lake exporter.
-- Applied inside the schema named by INGEST_DB_SCHEMA (search_path is set by the migrator).

-- API keys: `dpk_<key_id>_<secret>`; only the SHA-256 of the secret is stored. Keys are
-- 192-bit random, so a fast hash is enough (no password-style stretching needed).
CREATE TABLE IF NOT EXISTS api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id text NOT NULL UNIQUE,
    secret_sha256 bytea NOT NULL,
    name text NOT NULL,
    -- requests per second for this key; NULL: INGESTOR_RATE_LIMIT_PER_S
    rate_limit_per_s double precision CHECK (rate_limit_per_s IS NULL OR rate_limit_per_s >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- One receipt per distinct record version: (entity, natural key, payload hash) is unique, so an
-- exact duplicate finds the original receipt instead of creating a new one.
CREATE TABLE IF NOT EXISTS receipts (
    ingest_id uuid PRIMARY KEY,
    entity text NOT NULL,
    record_key text NOT NULL,
    payload_sha256 bytea NOT NULL,
    -- accepted: reserved, not yet acknowledged by the sink; durable: committed / acked
    status text NOT NULL CHECK (status IN ('accepted', 'durable')),
    sink text NOT NULL,
    principal text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    durable_at timestamptz,
    kafka_topic text,
    kafka_partition integer,
    kafka_offset bigint,
    outbox_id bigint,
    CONSTRAINT receipts_record_version UNIQUE (entity, record_key, payload_sha256)
);

-- Starter track: the transactional outbox the lake exporter drains into bronze Delta tables.
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ingest_id uuid NOT NULL UNIQUE,
    entity text NOT NULL,
    record_key text NOT NULL,
    -- the record's JSON exactly as accepted
    payload text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    -- Delta app-transaction version of the export batch that carries the row (set before the
    -- Delta commit, so a crash after the commit is recognised on restart)
    export_version bigint,
    exported_at timestamptz,
    delta_version bigint
);
CREATE INDEX IF NOT EXISTS outbox_unexported ON outbox (entity, id) WHERE exported_at IS NULL;

-- Idempotency-Key header: bound to the request fingerprint the first time it is seen.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal text NOT NULL,
    idempotency_key text NOT NULL,
    route text NOT NULL,
    request_sha256 bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, idempotency_key)
);
