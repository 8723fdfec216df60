#!/usr/bin/env bash
# Spark resource discovery for NVIDIA GPUs. Prints the one line Spark expects,
#   {"name": "gpu", "addresses": ["0", "1"]}
# with the nvidia-smi index of every GPU on this machine (torch's CUDA device index, as long as
# CUDA_VISIBLE_DEVICES does not renumber them). Workers of a standalone cluster read it through a
# properties file (bash infra/standalone_cluster.sh start --worker-properties FILE):
#   spark.worker.resource.gpu.amount          2
#   spark.worker.resource.gpu.discoveryScript <repo>/infra/gpu_discovery.sh
# On YARN or Kubernetes, executors run it: spark.executor.resource.gpu.discoveryScript.
#
# When nvidia-smi is missing, fails, lists no GPU or prints anything but one index per line, the
# script says so on stderr and exits 1; Spark logs that message and the worker does not start.
set -euo pipefail

fail() {
  echo "gpu_discovery.sh: $1" >&2
  exit 1
}

command -v nvidia-smi >/dev/null 2>&1 ||
  fail "nvidia-smi is not on PATH; expected it to list this machine's GPU indices (install the NVIDIA driver, or advertise no GPUs)"

status=0
output="$(nvidia-smi --query-gpu=index --format=csv,noheader)" || status=$?
((status == 0)) || fail "nvidia-smi --query-gpu=index exited with status $status; expected one GPU index per line. It printed: ${output:-nothing}"

addresses=""
while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*$ ]] && continue
  [[ "$line" =~ ^[[:space:]]*([0-9]+)[[:space:]]*$ ]] ||
    fail "expected nvidia-smi --query-gpu=index to print one GPU index per line (0, 1, ...); got: $line"
  addresses+="${addresses:+, }\"${BASH_REMATCH[1]}\""
done <<<"$output"
[ -n "$addresses" ] || fail "nvidia-smi lists no GPU; expected at least one index"

printf '{"name": "gpu", "addresses": [%s]}\n' "$addresses"
