"""Fixtures of the ingestor's unit tests: its in-memory store and sink (a fresh pair per test)."""

from __future__ import annotations

import pytest

from fastapi_app.app.core.memory import MemoryPublisher, MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()
