#!/usr/bin/env bash
# Build the Delta log store with the per-table commit lock (PostgresLockedS3LogStore) into a jar.
#
#   pyspark_jobs/logstore/build.sh OUTPUT_DIR CLASSPATH_DIR...
#
# Compiled against the jars in the CLASSPATH_DIRs: delta-storage (.jars/spark) and Hadoop's
# client API (pyspark's jars natively). Needs a JDK (javac, jar). Writes
# OUTPUT_DIR/dataplatform-delta-logstore.jar, which session.py passes in spark.jars with the rest.
set -euo pipefail

OUT="${1:?usage: build.sh OUTPUT_DIR CLASSPATH_DIR...}"
shift
[ $# -gt 0 ] || { echo "build.sh: give at least one CLASSPATH_DIR" >&2; exit 2; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLASSPATH=""
for dir in "$@"; do CLASSPATH="${CLASSPATH:+$CLASSPATH:}$dir/*"; done

CLASSES="$(mktemp -d)"
trap 'rm -rf "$CLASSES"' EXIT
# --release 17: the bytecode of the Spark images' Java 17, whatever JDK compiles it.
javac --release 17 -nowarn -cp "$CLASSPATH" -d "$CLASSES" \
  $(find "$HERE/src/main/java" -name '*.java' | sort)
mkdir -p "$OUT"
jar --create --file "$OUT/dataplatform-delta-logstore.jar" -C "$CLASSES" .
