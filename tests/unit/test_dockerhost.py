from __future__ import annotations

from dataplatform.dockerhost import DockerHost, compose_problems, track_memory_limit

GIB = 1024**3


def test_compose_problems_old_compose_and_small_engine_named_with_fix() -> None:
    problems = compose_problems(
        DockerHost(compose_version=(2, 20, 2), memory_bytes=4 * GIB), "advanced"
    )
    text = " ".join(problems)
    assert "Docker Compose 2.20.2 is too old: 2.24.4 or later" in text
    assert "the advanced track's containers may use" in text and "Settings > Resources" in text


def test_compose_problems_none_for_a_big_recent_host() -> None:
    host = DockerHost(compose_version=(2, 30, 0), memory_bytes=64 * GIB)
    assert [p for p in compose_problems(host, "starter") if "Compose" in p or "memory" in p] == []


def test_track_memory_limit_grows_with_the_track() -> None:
    assert (
        0
        < track_memory_limit("starter")
        < track_memory_limit("intermediate")
        < track_memory_limit("advanced")
    )
