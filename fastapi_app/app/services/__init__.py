"""Ingest logic between the HTTP layer and the store/publisher."""
