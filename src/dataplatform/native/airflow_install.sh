#!/usr/bin/env bash
# Install Airflow 3 and its providers into their own virtualenv, .venv-airflow.
#
#   bash src/dataplatform/native/airflow_install.sh
#
# Pinned by constraints-airflow.txt at the repo root (the project's own lock: the official
# constraint files cannot be fetched here). Airflow's pins conflict with the ingestor's and
# Spark's, hence the separate venv; the `dataplatform` CLI hides it. Idempotent: a stamp holds
# the hash of the constraints and of this script, so a second run returns at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
CONSTRAINTS="$ROOT/constraints-airflow.txt"
STAMP="$VENV/.dataplatform-install.sha256"

# What the DAGs need; every other package comes from the constraints as a dependency.
REQUIREMENTS=(
  apache-airflow==3.3.2
  apache-airflow-providers-standard
  apache-airflow-providers-postgres
  apache-airflow-providers-apache-spark
  apache-airflow-providers-openlineage
  # The provider's Kafka transport (AIRFLOW_OPENLINEAGE_TRANSPORT=kafka).
  confluent-kafka
  # Airflow's StatsD client ([metrics] statsd_on): its metrics go to the StatsD exporter.
  statsd
)

sum=$(cat "$CONSTRAINTS" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/airflow" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
  echo "    $VENV is up to date"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "Python 3.11 is required for Airflow ($PYTHON not found): set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel setuptools
"$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" "${REQUIREMENTS[@]}"
# A broken dependency set must fail here, not at the first `up`.
"$VENV/bin/pip" check >/dev/null
"$VENV/bin/airflow" version >/dev/null
echo "$sum" > "$STAMP"
echo "    installed $("$VENV/bin/airflow" version 2>/dev/null | tail -n 1) into $VENV"
