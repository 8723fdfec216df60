#!/usr/bin/env bash
# Builds the deepsift images from this checkout (run from anywhere; needs Docker with BuildKit):
#   deepsift:<version>        TORCH_VARIANT=cpu   Airflow, MLflow, the Spark master, CPU workers
#   deepsift:<version>-cuda   TORCH_VARIANT=cuda  GPU workers, Kubernetes drivers and executors
# <version> is __version__ in libs/deepsift/__init__.py, the one place it is defined. The compose
# file and the Kubernetes manifests name these tags; tests/unit/test_deployment_manifests.py fails
# when they do not match that version.
#
#   bash infra/docker/build.sh [cpu|cuda|all] [more docker build arguments]
#   IMAGE_REPOSITORY=registry.example.com/ml/deepsift bash infra/docker/build.sh all --push
#
# A repository other than "deepsift" must then be named in infra/k8s (spark.kubernetes.container.image
# in configmap.yaml and the CronJobs' image) and in infra/compose/compose.yaml.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version="$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$repo/libs/deepsift/__init__.py")"
if [ -z "$version" ]; then
  echo "build.sh: no __version__ = \"...\" line in libs/deepsift/__init__.py" >&2
  exit 1
fi
name="${IMAGE_REPOSITORY:-deepsift}"
which="${1:-all}"
shift || true

build() {  # variant, tag, more docker build arguments
  local variant="$1" tag="$2"
  shift 2
  echo "building $tag (TORCH_VARIANT=$variant)"
  docker build --file "$repo/infra/docker/Dockerfile" --build-arg "TORCH_VARIANT=$variant" \
    --build-arg "IMAGE_VERSION=$version" --tag "$tag" "$@" "$repo"
}

case "$which" in
  cpu) build cpu "$name:$version" "$@" ;;
  cuda) build cuda "$name:$version-cuda" "$@" ;;
  all) build cpu "$name:$version" "$@" && build cuda "$name:$version-cuda" "$@" ;;
  *) echo "usage: build.sh [cpu|cuda|all] [docker build arguments]" >&2; exit 2 ;;
esac
