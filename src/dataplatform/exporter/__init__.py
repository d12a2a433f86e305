"""The starter track's lake exporter: Postgres outbox rows -> bronze Delta tables on S3."""

from dataplatform.exporter.lake import ExportedBatch, LakeExporter, bronze_arrow_schema

__all__ = ["ExportedBatch", "LakeExporter", "bronze_arrow_schema"]
