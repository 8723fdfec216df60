#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the pyspark wheel: one master and N workers on
# 127.0.0.1, each a `spark-class` JVM whose process id is kept in the state folder, so `stop` kills
# exactly what `start` launched (and nothing else named Master or Worker).
#
#   bash infra/standalone_cluster.sh start [options]   # prints the master URL, e.g. spark://127.0.0.1:7077
#   bash infra/standalone_cluster.sh stop  [--state-dir DIR]
#   bash infra/standalone_cluster.sh status [--state-dir DIR]
#
# Options (defaults in brackets):
#   --state-dir DIR          pid files, logs and worker scratch [<repo>/.deepsift/cluster]
#   --port PORT              master RPC port [7077]
#   --webui-port PORT        master web UI port; workers use 0 (any free port) [8080]
#   --workers N              number of workers [2]
#   --cores C                cores each worker offers [1]
#   --memory M               memory each worker offers, e.g. 2g [2g]
#   --host-per-worker        worker N listens on 127.0.0.(N+1) instead of 127.0.0.1, so that Spark sees
#                            each worker as a host of its own, as on a real cluster (Spark never runs a
#                            speculative copy of a task on a host where an attempt of it is running)
#   --worker-properties F    a Spark properties file every worker reads, e.g. to advertise GPUs:
#                              spark.worker.resource.gpu.amount 2
#                              spark.worker.resource.gpu.discoveryScript <repo>/infra/gpu_discovery.sh
#
# Then: DEEPSIFT_SPARK__MASTER=spark://127.0.0.1:7077 deepsift scan ...  (or --master for spark-submit)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"

command="${1:-}"
shift || true
state_dir="$repo/.deepsift/cluster"
port=7077
webui_port=8080
workers=2
cores=1
memory=2g
worker_properties=""
host_per_worker=0
while (($#)); do
  case "$1" in
    --state-dir) state_dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --webui-port) webui_port="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --cores) cores="$2"; shift 2 ;;
    --memory) memory="$2"; shift 2 ;;
    --worker-properties) worker_properties="$2"; shift 2 ;;
    --host-per-worker) host_per_worker=1; shift ;;
    *) echo "standalone_cluster.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done

spark_home() {
  if [ ! -x "$python" ]; then
    echo "no $python: run \`make install\` first (or set PYTHON to an interpreter with pyspark)" >&2
    exit 1
  fi
  "$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

# Whether the pid in file $1 is still a Spark daemon: a pid that died and was reused by another process
# (or is a zombie nobody reaped) does not count, so `stop` never signals a stranger.
alive() {
  [ -f "$1" ] || return 1
  local pid state args
  pid="$(cat "$1")"
  state="$(ps -o stat= -p "$pid" 2>/dev/null)" || return 1
  args="$(ps -ww -o args= -p "$pid" 2>/dev/null)" || return 1  # -ww: never cut at $COLUMNS
  [ "${state:0:1}" != Z ] && [[ "$args" == *org.apache.spark.deploy.* ]]
}

wait_for_log() {  # file, pattern, what, pid file: wait up to 60 s for a line saying the daemon is up
  local waited=0 why
  while ! grep -q "$2" "$1" 2>/dev/null; do
    if ! alive "$4" || ((waited >= 120)); then
      if alive "$4"; then why="did not start within 60 s"; else why="exited"; fi
      # Spark's own message, without the stack frames that would bury it.
      echo "standalone_cluster.sh: $3 $why; from its log ($1):" >&2
      grep -v -E '^[[:space:]]+(at |\.\.\. [0-9]+ more)' "$1" | grep -A 3 -E 'ERROR|Exception' | head -n 20 >&2 ||
        tail -n 20 "$1" >&2 || true
      return 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
}

start() {
  bash "$repo/infra/check_prereqs.sh" java
  mkdir -p "$state_dir"
  if alive "$state_dir/master.pid"; then
    echo "a master started from $state_dir is already running (pid $(cat "$state_dir/master.pid")); stop it first" >&2
    exit 1
  fi
  local home
  home="$(spark_home)"
  export SPARK_HOME="$home" SPARK_LOG_DIR="$state_dir" PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"
  # Workers launch executors that run Python UDFs: the same interpreter (hence deepsift) as the driver.
  "$home/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$port" --webui-port "$webui_port" >"$state_dir/master.log" 2>&1 &
  echo $! >"$state_dir/master.pid"
  wait_for_log "$state_dir/master.log" "I have been elected leader" "the master" "$state_dir/master.pid" || { stop; exit 1; }
  local url="spark://127.0.0.1:$port"
  for i in $(seq 1 "$workers"); do
    local host=127.0.0.1
    ((host_per_worker)) && host="127.0.0.$((i + 1))"
    local args=(--host "$host" --cores "$cores" --memory "$memory" --webui-port 0 --work-dir "$state_dir/worker-$i")
    [ -n "$worker_properties" ] && args+=(--properties-file "$worker_properties")
    "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker "${args[@]}" "$url" \
      >"$state_dir/worker-$i.log" 2>&1 &
    echo $! >"$state_dir/worker-$i.pid"
  done
  for i in $(seq 1 "$workers"); do
    wait_for_log "$state_dir/worker-$i.log" "Successfully registered with master" "worker $i" "$state_dir/worker-$i.pid" || { stop; exit 1; }
  done
  echo "$url"
}

stop() {  # SIGTERM (workers then stop their executors), wait up to 30 s, then SIGKILL what is left
  local stopped=0 running=()
  for pid_file in "$state_dir"/worker-*.pid "$state_dir"/master.pid; do
    [ -f "$pid_file" ] || continue
    if alive "$pid_file"; then
      kill "$(cat "$pid_file")" 2>/dev/null && running+=("$pid_file") && stopped=$((stopped + 1))
    fi
  done
  for _ in $(seq 1 60); do
    local left=()
    for pid_file in "${running[@]}"; do alive "$pid_file" && left+=("$pid_file"); done
    running=("${left[@]}")
    ((${#running[@]})) || break
    sleep 0.5
  done
  for pid_file in "${running[@]}"; do
    echo "standalone_cluster.sh: $(basename "$pid_file" .pid) did not stop within 30 s; killing it" >&2
    kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  done
  rm -f "$state_dir"/worker-*.pid "$state_dir"/master.pid
  echo "stopped $stopped process(es) started from $state_dir"
}

status() {
  for pid_file in "$state_dir"/master.pid "$state_dir"/worker-*.pid; do
    [ -f "$pid_file" ] || continue
    local name
    name="$(basename "$pid_file" .pid)"
    if alive "$pid_file"; then echo "$name: running (pid $(cat "$pid_file"))"; else echo "$name: not running"; fi
  done
}

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: standalone_cluster.sh start|stop|status [options] (see the header of this script)" >&2; exit 2 ;;
esac
