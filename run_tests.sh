#!/usr/bin/env bash
# Run every test tier against the real native services.
#
#   ./run_tests.sh            unit, then integration and e2e on the real services, then
#                             ./quick_start.sh on every track (sample data accepted and landed)
#   ./run_tests.sh -m unit    one tier (any pytest arguments are passed on)
#
# Sets up what the tests need (same bootstrap as quick_start.sh), starts the services of the
# test track unless they already run, and stops what it started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
TRACK="${DATAPLATFORM_TRACK:-advanced}"
export DATAPLATFORM_TRACK="$TRACK"

./quick_start.sh --setup-only
# Test-only Debian package: headless Chromium renders the pages the tests look at.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  echo "== installing chromium (the tests render pages in it)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
DP="$ROOT/.venv/bin/dataplatform"
PYTEST=("$ROOT/.venv/bin/python" -m pytest)

if [ $# -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi

echo "== unit tests"
"${PYTEST[@]}" tests/unit -q

STARTED=0
if ! [ -f data/run/supervisord.pid ] || ! kill -0 "$(cat data/run/supervisord.pid)" 2>/dev/null; then
  STARTED=1
fi
# The image tests rebuild each image's virtualenv and need no service: they run beside the
# services' start and the suites (minutes of pip work otherwise added to the run's length).
IMAGE_TESTS=tests/integration/test_image_commands.py
IMAGE_LOG="$(mktemp)"
"${PYTEST[@]}" "$IMAGE_TESTS" -q >"$IMAGE_LOG" 2>&1 &
IMAGE_PID=$!
cleanup() {
  kill "$IMAGE_PID" 2>/dev/null || true
  rm -f "$IMAGE_LOG"
  [ "$STARTED" -eq 1 ] && "$DP" down || true
}
trap cleanup EXIT

echo "== starting the $TRACK track's services"
"$DP" up --track "$TRACK"

echo "== integration and e2e tests on the real services"
"${PYTEST[@]}" tests/integration tests/e2e -q --durations=15 --ignore="$IMAGE_TESTS"

echo "== image tests (each image's virtualenv rebuilt, its containers' commands run)"
image_rc=0
wait "$IMAGE_PID" || image_rc=$?
cat "$IMAGE_LOG"
[ "$image_rc" -eq 0 ]

# Every track as a new user brings it up (tools/quick_start_tracks.sh: quick_start.sh per track
# on the installs above, sample data accepted and landed in bronze). The test track first: it is
# already up. Only when this script started the services: switching tracks restarts a platform
# someone else is running.
if [ "$STARTED" -eq 1 ]; then
  others=()
  for track in starter intermediate advanced; do [ "$track" = "$TRACK" ] || others+=("$track"); done
  bash tools/quick_start_tracks.sh "$TRACK" "${others[@]}"
fi
