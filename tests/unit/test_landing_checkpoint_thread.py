"""When landing's background thread writes a Delta checkpoint of the tables it appends to."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dataplatform.delta_checkpoints import checkpoint_due
from pyspark_jobs import landing

FAILURES = "landing_delta_checkpoint_failures_total"


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The (table, version) of every checkpoint the thread writes, instead of writing them."""
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        landing, "write_checkpoint", lambda uri, version, options: calls.append((uri, version))
    )
    return calls


def test_checkpoint_due_every_interval_never_at_zero() -> None:
    assert [v for v in range(0, 301) if checkpoint_due(v, 100)] == [100, 200, 300]


def test_checkpoint_due_after_a_previous_commit_when_an_interval_was_crossed() -> None:
    assert checkpoint_due(102, 100, previous=99)
    assert checkpoint_due(100, 100, previous=99)
    assert not checkpoint_due(99, 100, previous=98)
    assert not checkpoint_due(199, 100, previous=100)


def test_thread_checkpoints_each_interval_of_each_table_then_stops(
    written: list[tuple[str, int]],
) -> None:
    thread = landing.CheckpointThread({}, every=3)
    thread.start()
    for version in range(1, 8):
        thread.committed("s3://lake/bronze", version)
    thread.committed("s3://lake/quarantine", 3)
    thread.stop()
    assert written == [
        ("s3://lake/bronze", 3),
        ("s3://lake/bronze", 6),
        ("s3://lake/quarantine", 3),
    ]


def test_thread_does_not_miss_a_multiple_another_writer_made(
    written: list[tuple[str, int]],
) -> None:
    # Landing commits 98 and 99; OPTIMIZE makes 100 and 101; landing's next commit is 102.
    thread = landing.CheckpointThread({}, every=100)
    thread.start()
    for version in (98, 99, 102, 103):
        thread.committed("s3://lake/bronze", version)
    thread.stop()
    assert written == [("s3://lake/bronze", 102)]


def test_a_failed_checkpoint_is_counted_and_the_thread_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []

    def fail_first(uri: str, version: int, options: dict[str, str]) -> None:
        attempts.append(version)
        if len(attempts) == 1:
            raise OSError("S3 unreachable")

    monkeypatch.setattr(landing, "write_checkpoint", fail_first)
    failures = REGISTRY.get_sample_value(FAILURES) or 0.0
    thread = landing.CheckpointThread({}, every=1)
    thread.start()
    thread.committed("s3://lake/bronze", 1)
    thread.committed("s3://lake/bronze", 2)
    thread.stop()
    assert attempts == [1, 2]
    assert REGISTRY.get_sample_value(FAILURES) == failures + 1
