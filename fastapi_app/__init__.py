"""The ingestor service: a FastAPI app in front of the track's sink (Postgres outbox or Kafka)."""
