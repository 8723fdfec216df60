#!/usr/bin/env bash
# Runs once, when the Postgres data volume is first initialised (the postgres image executes the
# scripts in /docker-entrypoint-initdb.d): one role and one database each for Airflow's metadata,
# MLflow's tracking and registry store, and the Hive metastore of the lakehouse tables.
# The passwords come from the service's environment (infra/compose/.env).
set -euo pipefail

create_database() {  # name, password
  psql --username "$POSTGRES_USER" --dbname postgres --set ON_ERROR_STOP=1 \
    --set name="$1" --set password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
}

create_database airflow "$AIRFLOW_DB_PASSWORD"
create_database mlflow "$MLFLOW_DB_PASSWORD"
create_database metastore "$METASTORE_DB_PASSWORD"
