"""The ingestor's settings, reached through one cached function."""

from __future__ import annotations

from dataplatform.settings import IngestorSettings, get_ingestor_settings


def get_settings() -> IngestorSettings:
    """The cached `IngestorSettings` (env vars and `.env`)."""
    return get_ingestor_settings()
