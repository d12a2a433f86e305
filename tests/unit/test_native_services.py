from __future__ import annotations

import itertools

import pytest

from dataplatform.native.services import SERVICES, TRACK_SERVICES, PlatformError, services_for
from dataplatform.settings import TRACKS


def test_tracks_are_cumulative() -> None:
    for smaller, larger in itertools.pairwise(TRACKS):
        assert set(TRACK_SERVICES[smaller]) <= set(TRACK_SERVICES[larger])


@pytest.mark.parametrize("track", TRACKS)
def test_track_services_start_after_their_dependencies(track: str) -> None:
    seen: set[str] = set()
    for service in services_for(track):  # type: ignore[arg-type]
        assert set(service.depends_on) <= seen, f"{service.name} starts before {service.depends_on}"
        seen.add(service.name)


def test_every_track_service_is_defined() -> None:
    for names in TRACK_SERVICES.values():
        assert set(names) <= set(SERVICES)


def test_unknown_track_named_in_error() -> None:
    with pytest.raises(PlatformError, match="unknown track 'huge'"):
        services_for("huge")  # type: ignore[arg-type]
