#!/usr/bin/env bash
# Entry point of the deepsift image (infra/docker/Dockerfile).
#
# 1. When SPARK_DEFAULTS_FILES is set (file names under /opt/deepsift/infra/spark, separated by
#    spaces), writes their concatenation, in that order, to $SPARK_CONF_DIR/spark-defaults.conf:
#      SPARK_DEFAULTS_FILES="spark-defaults.standalone.conf lakehouse-s3a.conf"
# 2. Runs the command:
#      executor   what Spark on Kubernetes runs in an executor pod (it sets the SPARK_* variables)
#      driver     what Spark on Kubernetes runs in a driver pod (cluster deploy mode)
#      anything else as given: deepsift ..., spark-submit ..., spark-class ..., airflow ..., mlflow ...
set -euo pipefail

spark_files=/opt/deepsift/infra/spark

if [ -n "${SPARK_DEFAULTS_FILES:-}" ]; then
  mkdir -p "$SPARK_CONF_DIR"
  target="$SPARK_CONF_DIR/spark-defaults.conf"
  partial="$(mktemp "$target.XXXXXX")"
  for name in $SPARK_DEFAULTS_FILES; do
    if [ ! -f "$spark_files/$name" ]; then
      echo "entrypoint: SPARK_DEFAULTS_FILES names $name, which is not a file in $spark_files" >&2
      rm -f "$partial"
      exit 1
    fi
    { printf '# ---- infra/spark/%s\n' "$name"; cat "$spark_files/$name"; printf '\n'; } >>"$partial"
  done
  mv "$partial" "$target"
fi

case "${1:-}" in
  executor)
    shift
    # Spark passes the executor's JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
    java_opts=()
    index=0
    while name="SPARK_JAVA_OPT_$index" && [ -n "${!name+set}" ]; do
      java_opts+=("${!name}")
      index=$((index + 1))
    done
    classpath="${SPARK_CONF_DIR}:${SPARK_HOME}/jars/*${SPARK_CLASSPATH:+:$SPARK_CLASSPATH}"
    exec java "${java_opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" \
      --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  driver)
    shift
    # In a driver pod the application runs in client mode against the executors it requests.
    exec spark-submit \
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
