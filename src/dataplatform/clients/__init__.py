"""Clients for the outside systems, built from settings: Kafka, S3, PostgreSQL."""
