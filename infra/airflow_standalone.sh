#!/usr/bin/env bash
# Starts Airflow standalone (scheduler, DAG processor, triggerer and the API server with the UI) on
# localhost with the deepsift DAGs. Ctrl-C stops it. The admin password is printed on the first start
# (and kept in $AIRFLOW_HOME). DAGs start paused: unpause them in the UI.
#
#   bash infra/airflow_standalone.sh
#
# Each default below gives way to the variable when it is already set in the environment:
#   AIRFLOW_HOME                         <deepsift home>/airflow: airflow.cfg, logs, the SQLite metadata DB
#   AIRFLOW__DATABASE__SQL_ALCHEMY_CONN  sqlite:///$AIRFLOW_HOME/airflow.db. Postgres instead, e.g.
#                                        postgresql+psycopg2://airflow:PASSWORD@localhost:5432/airflow
#                                        (after .venv/bin/pip install 'apache-airflow[postgres]')
#   AIRFLOW_CONN_SPARK_DEFAULT           {"conn_type": "spark", "host": "local[*]"}; a standalone cluster:
#                                        {"conn_type": "spark", "host": "spark://HOST", "port": 7077}
#   AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT     <deepsift home>/uploads, one folder per day (YYYY-MM-DD)
#   AIRFLOW__API__PORT                   8080 (the UI and the API the tasks report to)
# The deepsift home is the configured one (DEEPSIFT_HOME, DEEPSIFT_CONFIG, default .deepsift here).
# The pool deepsift_spark gets 1 slot when it is created: embedded Derby admits one Spark job at a time.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.venv/bin"
if [ ! -x "$bin/airflow" ]; then
  echo "no $bin/airflow: run \`make install\` first" >&2
  exit 1
fi
bash "$repo/infra/check_prereqs.sh" java
cd "$repo"

home="$("$bin/python" -c 'from deepsift.config import load_config; print(load_config().home.resolve())')"
spark_bin="$("$bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin"))')"
local_spark='{"conn_type": "spark", "host": "local[*]"}'
port="${AIRFLOW__API__PORT:-8080}"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$home/airflow}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$local_spark}"
export AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT="${AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT:-$home/uploads}"
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"  # tasks reach the execution API here
export PATH="$spark_bin:$bin:$PATH"  # spark-submit from the pyspark wheel

mkdir -p "$AIRFLOW_HOME"
"$bin/airflow" db migrate
if ! "$bin/airflow" pools get deepsift_spark >/dev/null 2>&1; then
  "$bin/airflow" pools set deepsift_spark 1 "deepsift Spark jobs; raise with a metastore service that admits several"
fi
echo "deepsift: DAGs from $AIRFLOW__CORE__DAGS_FOLDER, uploads under $AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT," \
  "UI on $AIRFLOW__API__BASE_URL"
exec "$bin/airflow" standalone
