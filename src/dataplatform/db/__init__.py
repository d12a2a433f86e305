"""The ingest tables in PostgreSQL: schema migrations and API keys.

The schema (`INGEST_DB_SCHEMA`, default `ingest`) holds the outbox, receipts, idempotency keys
and API keys. Migrations are plain SQL files in `migrations/`, applied in file-name order.
"""
