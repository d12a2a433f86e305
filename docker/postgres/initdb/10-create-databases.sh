#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume (the image creates
# POSTGRES_USER and POSTGRES_DB itself). The other databases on the shared server, owned by the
# platform's role: Airflow's metadata, Marquez (lineage) and OpenMetadata (catalog). The native
# runtime's postgres `initialise` step creates its own list (services.PLATFORM_DATABASES).
set -euo pipefail

for db in airflow marquez openmetadata; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$POSTGRES_USER')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
done
