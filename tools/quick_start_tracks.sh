#!/usr/bin/env bash
# Bring each track up as a new user does and check its sample data lands; time each one.
#
#   bash tools/quick_start_tracks.sh [TRACK...]     (default: starter intermediate advanced)
#
# Runs ./quick_start.sh --track TRACK for each TRACK in turn on the same checkout: the installs
# are shared (quick_start's setup steps find them built), each track's services are started
# (switching from the previous track) and its 200 sample records must be accepted and land in
# bronze, or quick_start fails and so does this script. Leaves the last track running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ $# -gt 0 ] || set -- starter intermediate advanced

summary=()
for track in "$@"; do
  echo "== quick_start.sh --track $track"
  t0=$(date +%s)
  # The track being started decides every service's settings, whatever the environment says.
  DATAPLATFORM_TRACK="$track" ./quick_start.sh --track "$track"
  summary+=("quick_start --track $track: $(( $(date +%s) - t0 ))s")
done
printf '== every track came up with its sample data in bronze\n'
printf '   %s\n' "${summary[@]}"
