#!/usr/bin/env bash
# Bootstrap and start the data platform natively (no Docker needed).
#
#   ./quick_start.sh [--track starter|intermediate|advanced] [--setup-only]
#
# Idempotent: installs what is missing (Debian packages, the .venv, the JVM jars), writes .env
# with random secrets on the first run, starts the track's services and shows their status.
# A second run on a machine already set up only checks and (re)starts: it takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

TRACK=""
SETUP_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --track|-t) TRACK="${2:?--track needs starter, intermediate or advanced}"; shift 2 ;;
    --track=*) TRACK="${1#*=}"; shift ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "${TRACK:-advanced}" in
  starter|intermediate|advanced) ;;
  *) echo "unknown track '$TRACK': choose starter, intermediate or advanced" >&2; exit 2 ;;
esac

VENV="$ROOT/.venv"
STAMPS="$ROOT/data/run/stamps"
PYTHON="${PYTHON:-python3.11}"
START=$(date +%s)
STEP=0

# step "title" command...: numbered progress with the time each step took.
step() {
  local title="$1"; shift
  STEP=$((STEP + 1))
  local t0; t0=$(date +%s)
  printf '[%d] %s ...\n' "$STEP" "$title"
  "$@"
  printf '    done in %ss\n' "$(( $(date +%s) - t0 ))"
}

# fresh NAME FILES...: true when the stamp NAME is older than, or differs from, the files' hash.
fresh() {
  local name="$1"; shift
  local sum; sum=$(cat "$@" | sha256sum | cut -d' ' -f1)
  [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$sum" ]
}
stamp() {
  local name="$1"; shift
  mkdir -p "$STAMPS"
  cat "$@" | sha256sum | cut -d' ' -f1 > "$STAMPS/$name"
}

install_debian_packages() {
  local missing=()
  command -v java >/dev/null && java -version 2>&1 | grep -q 'version "17' || missing+=(openjdk-17-jre-headless)
  # javac builds the Delta log store with the commit lock (pyspark_jobs/logstore).
  command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null || missing+=(maven)
  [ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "    java 17 (with javac), maven and postgresql are installed"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} — run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "    installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts a default cluster on 5432; the platform runs its own under data/.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r ver name; do
      pg_ctlcluster "$ver" "$name" stop || true
    done
  fi
}

# Prometheus and promtool from Debian (the advanced track's metrics store; the rule tests run
# promtool). Debian's own prometheus service would listen on 9090: keep it stopped and disabled,
# the platform runs Prometheus under its supervisor on the port the settings name.
install_prometheus() {
  if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing Debian package: prometheus — run: sudo apt-get install -y --no-install-recommends prometheus" >&2
      exit 1
    fi
    echo "    installing prometheus"
    apt-get update -qq
    # No recommends: they add node-exporter, another system service on a fixed port.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "    prometheus $(/usr/bin/prometheus --version 2>&1 | awk 'NR==1 {print $3}') is installed"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
      /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
  fi
}

install_python() {
  if ! command -v "$PYTHON" >/dev/null; then
    echo "Python 3.11 is required ($PYTHON not found): install it, or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  if fresh venv pyproject.toml constraints.txt && [ -x "$VENV/bin/dataplatform" ]; then
    echo "    .venv is up to date"
    return
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel setuptools
  "$VENV/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e '.[api,spark,dev]'
  stamp venv pyproject.toml constraints.txt
}

resolve_jars() {
  local kafka_pom=src/dataplatform/native/kafka/pom.xml spark_pom=pyspark_jobs/pom.xml
  if fresh jars "$kafka_pom" "$spark_pom" && [ -d .jars/kafka ] && [ -d .jars/jmx ] && [ -d .jars/spark ]; then
    echo "    .jars is up to date"
    return
  fi
  rm -rf .jars/kafka .jars/jmx .jars/spark
  # The JMX exporter agent of the broker's metrics in its own folder, off the broker's classpath.
  mvn -q -B -f "$kafka_pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DexcludeArtifactIds=jmx_prometheus_javaagent -DoutputDirectory="$ROOT/.jars/kafka"
  mvn -q -B -f "$kafka_pom" dependency:copy-dependencies \
    -DincludeArtifactIds=jmx_prometheus_javaagent -DoutputDirectory="$ROOT/.jars/jmx"
  mvn -q -B -f "$spark_pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$ROOT/.jars/spark"
  stamp jars "$kafka_pom" "$spark_pom"
}

# Go's official installer puts the toolchain in /usr/local/go/bin, which a minimal PATH lacks.
[ -x /usr/local/go/bin/go ] && ! command -v go >/dev/null && PATH="$PATH:/usr/local/go/bin"

# go_tool NAME DIR [ENV...]: build the Go program in DIR into .venv/bin/NAME when missing or when
# a source of DIR changed (stamped like the other steps).
go_tool() {
  local name="$1" dir="$2"; shift 2
  local sources; mapfile -t sources < <(find "$dir" -maxdepth 1 -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | sort)
  if fresh "$name" "${sources[@]}" && [ -x "$VENV/bin/$name" ]; then
    echo "    .venv/bin/$name is up to date"
    return
  fi
  if ! command -v go >/dev/null; then
    echo "Go 1.24 or later is needed to build $dir (https://go.dev/doc/install)" >&2
    exit 1
  fi
  (cd "$dir" && env GOTOOLCHAIN=local "$@" go build -trimpath -o "$VENV/bin/$name" .)
  stamp "$name" "${sources[@]}"
}

# go_install NAME MODULE VERSION: `go install MODULE@VERSION` (a released program, checked against
# the Go checksum database) into .venv/bin/NAME when missing or when the pinned version changed.
go_install() {
  local name="$1" module="$2" version="$3" pinned="$VENV/bin/.$1.version"
  if [ -x "$VENV/bin/$name" ] && [ "$(cat "$pinned" 2>/dev/null)" = "$version" ]; then
    echo "    .venv/bin/$name $version is installed"
    return
  fi
  if ! command -v go >/dev/null; then
    echo "Go 1.24 or later is needed to install $module (https://go.dev/doc/install)" >&2
    exit 1
  fi
  env GOBIN="$VENV/bin" GOTOOLCHAIN=local CGO_ENABLED=0 go install -trimpath "$module@$version"
  echo "$version" > "$pinned"
}

# The Delta log store that takes each table's commit lock (docs/LAKEHOUSE.md), compiled against
# delta-storage (.jars/spark) and Hadoop's API (pyspark's jars) into .jars/spark with the rest.
build_logstore() {
  local jar=.jars/spark/dataplatform-delta-logstore.jar
  local sources; mapfile -t sources < <(find pyspark_jobs/logstore -type f | sort)
  if fresh logstore "${sources[@]}" pyspark_jobs/pom.xml && [ -f "$jar" ]; then
    echo "    $jar is up to date"
    return
  fi
  local pyspark_jars
  pyspark_jars=$("$VENV/bin/python" -c 'import pathlib, pyspark; print(pathlib.Path(pyspark.__file__).parent / "jars")')
  rm -f "$jar"
  bash pyspark_jobs/logstore/build.sh .jars/spark .jars/spark "$pyspark_jars"
  stamp logstore "${sources[@]}" pyspark_jobs/pom.xml
}

# PostgreSQL refuses to run as root: when we are root, the postgres user must be able to reach
# data/. Grant it traverse (x) on the parent folders that lack it, nothing more.
postgres_can_reach_data() {
  [ "$(id -u)" -eq 0 ] || return 0
  mkdir -p "$ROOT/data"
  local dir="$ROOT"
  while [ "$dir" != "/" ]; do
    if ! runuser -u postgres -- test -x "$dir"; then
      echo "    granting the postgres user traverse access to $dir (chmod o+x)"
      chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
  done
}

step "Debian packages (Java 17, Maven, PostgreSQL)" install_debian_packages
step "Prometheus and promtool (Debian)" install_prometheus
step "Python virtualenv .venv" install_python
step "Airflow in .venv-airflow (its own pins: constraints-airflow.txt)" bash src/dataplatform/native/airflow_install.sh
step "JVM jars (Kafka broker, Spark/Delta/s3a) into .jars" resolve_jars
# compose-resolve: compose's own loader (compose-go); the tests resolve each compose profile with
# it to check what every container would actually run with.
step "compose-resolve (compose's loader, for the compose checks) into .venv/bin" \
  go_tool compose-resolve tools/compose-resolve
# otelcol: the advanced track's OpenTelemetry Collector, generated by the collector builder
# (tools/otelcol/builder-config.yaml: every module at one release) and committed. A first build
# compiles the collector's modules: minutes.
step "OpenTelemetry Collector (tools/otelcol) into .venv/bin" \
  go_tool otelcol tools/otelcol CGO_ENABLED=0
# ferretdb: the advanced track's document store (MongoDB wire protocol over PostgreSQL), FerretDB
# v1.24.2 embedded in a small main (tools/ferretdb). A first build compiles its modules: minutes.
step "FerretDB (tools/ferretdb) into .venv/bin" \
  go_tool ferretdb tools/ferretdb CGO_ENABLED=0
# statsd_exporter: the advanced track's bridge from Airflow's StatsD metrics to Prometheus
# (Debian has no package of it).
step "Prometheus StatsD exporter into .venv/bin" \
  go_install statsd_exporter github.com/prometheus/statsd_exporter v0.31.0
step "Delta log store with the commit lock (javac) into .jars/spark" build_logstore
step "checkers for the tests (checkov in .venv-checkov, openmetadata-ingestion in .venv-openmetadata, actionlint in .tools/bin)" bash tools/install.sh
step "secrets in .env" "$VENV/bin/dataplatform" env init
step "data folder reachable by PostgreSQL" postgres_can_reach_data

if [ "$SETUP_ONLY" -eq 1 ]; then
  echo "setup finished in $(( $(date +%s) - START ))s"
  exit 0
fi

TRACK_ARGS=()
[ -n "$TRACK" ] && TRACK_ARGS=(--track "$TRACK")
DP="$VENV/bin/dataplatform"
step "start the ${TRACK:-default} track natively" "$DP" up "${TRACK_ARGS[@]}"
step "an API key for the sample data (INGESTOR_API_KEY in .env)" "$DP" apikey ensure --name quick-start
# rows TABLE: the table's row count (0 while it does not exist yet).
rows() {
  local n
  n=$("$DP" lake count --table "$1" 2>/dev/null | sed -nE 's/.*: ([0-9]+) rows.*/\1/p')
  echo "${n:-0}"
}
# Send the sample and wait until every accepted record is in bronze: accepted means durable in
# the sink (outbox or Kafka), landed means the exporter or the landing job wrote it to Delta.
send_sample() {
  local before_tx before_cl out want
  before_tx=$(rows bronze/finance/transactions)
  before_cl=$(rows bronze/insurance/claims)
  out=$("$DP" generate --entity all --count 200 --batch-size 100 --send) || { echo "$out"; return 1; }
  # Every record sent must be accepted: a rejected one is a broken platform, not bad luck.
  want=$(echo "$out" | "$VENV/bin/python" -c 'import json, sys
e = json.load(sys.stdin)["entities"]
short = {k: v for k, v in e.items() if v["accepted"] + v["duplicates"] != v["sent"]}
if short or not e:
    sys.exit(f"not every record was accepted: {json.dumps(short or e)}")
print(*(e.get(k, {}).get("accepted", 0) for k in ("transactions", "claims")))') || { echo "$out"; return 1; }
  read -r want_tx want_cl <<< "$want"
  echo "    accepted: $want_tx transactions, $want_cl claims; waiting for them in bronze"
  local deadline=$(( $(date +%s) + 300 )) got_tx got_cl
  while :; do
    got_tx=$(( $(rows bronze/finance/transactions) - before_tx ))
    got_cl=$(( $(rows bronze/insurance/claims) - before_cl ))
    if [ "$got_tx" -ge "$want_tx" ] && [ "$got_cl" -ge "$want_cl" ]; then
      echo "    landed in bronze: $got_tx transactions, $got_cl claims"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "only $got_tx of $want_tx transactions and $got_cl of $want_cl claims reached bronze in 300 s:" \
        "see dataplatform logs landing (or lake-exporter on the starter track)" >&2
      return 1
    fi
    sleep 3
  done
}
step "send 200 generated transactions and claims through the API; wait until they land" send_sample

env_value() { grep "^$1=" .env | tail -n 1 | cut -d= -f2-; }
ACTIVE_TRACK="${TRACK:-$(env_value DATAPLATFORM_TRACK)}"
ACTIVE_TRACK="${ACTIVE_TRACK:-advanced}"
TABLES=(bronze/finance/transactions bronze/insurance/claims)
if [ "$ACTIVE_TRACK" != starter ]; then
  TABLES+=(silver/finance/transactions silver/insurance/claims)
  # The first run curates once so silver exists; afterwards the curation DAG (advanced) or
  # `dataplatform run curation` keeps it current, and a re-run of this script stays fast.
  if ! "$DP" lake count --table silver/finance/transactions >/dev/null 2>&1; then
    step "curate bronze -> silver -> gold once (dataplatform run curation)" "$DP" run curation
  fi
fi
show_tables() {
  local table
  for table in "${TABLES[@]}"; do "$DP" lake count --table "$table" || true; done
}
step "rows in the lake, read with delta-rs" show_tables
"$DP" status --track "$ACTIVE_TRACK"

cat <<EOF

The platform is up ($(( $(date +%s) - START ))s). Credentials and ports are in .env.
  API docs:    http://127.0.0.1:$(env_value INGESTOR_PORT)/docs   (send X-API-Key: the INGESTOR_API_KEY in .env)
  try it:      .venv/bin/dataplatform generate --count 10 --send
  status:      .venv/bin/dataplatform status
  logs:        .venv/bin/dataplatform logs ingestor      (or postgres, s3, kafka, lake-exporter)
  stop:        .venv/bin/dataplatform down
EOF
if [ "$ACTIVE_TRACK" = advanced ]; then
  cat <<EOF
  Airflow UI:  http://127.0.0.1:$(env_value AIRFLOW_PORT)   user $(env_value AIRFLOW_ADMIN_USER)   password $(env_value AIRFLOW_ADMIN_PASSWORD)
               DAGs: curation, data_quality, lake_maintenance, platform_backup (docs/AIRFLOW.md)
EOF
fi
