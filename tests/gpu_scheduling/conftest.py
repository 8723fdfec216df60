"""Fixtures for the GPU scheduling tests: a standalone cluster whose worker advertises pseudo-GPUs.

This machine has no GPU. Spark schedules any named resource from the addresses a discovery script
reports, so the worker's discovery script here is a stand-in that reports two GPU addresses, ``0``
and ``1``; Spark hands them to executors and tasks exactly as it would real ones. The cluster is
``infra/standalone_cluster.sh`` (one master, one worker with two cores) on free ports, with its state
in a temporary folder; teardown stops exactly the processes it started.

Spark drivers run as child processes (``driver.py``): the pytest process may already hold a local
SparkContext (``tests/integration``), and a process has at most one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO_ROOT / "infra" / "standalone_cluster.sh"
DRIVER = Path(__file__).with_name("driver.py")
PSEUDO_GPUS = ("0", "1")
"""The addresses the stand-in discovery script reports."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environ() -> dict[str, str]:
    """This environment without deepsift settings or a developer's own Spark locations."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEEPSIFT_", "SPARK_", "PYSPARK_")) and key != "PYTHONPATH"
    }


def write_discovery_script(path: Path, output: str) -> Path:
    """A discovery script that prints ``output``: a stand-in for ``infra/gpu_discovery.sh`` on a GPU host."""
    path.write_text(f"#!/usr/bin/env bash\ncat <<'EOF'\n{output}\nEOF\n")
    path.chmod(0o755)
    return path


def write_worker_properties(path: Path, gpus: int, discovery_script: Path) -> Path:
    path.write_text(
        f"spark.worker.resource.gpu.amount {gpus}\nspark.worker.resource.gpu.discoveryScript {discovery_script}\n"
    )
    return path


@dataclass(frozen=True)
class PseudoGpuCluster:
    url: str
    state_dir: Path


def _cluster_script(state_dir: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), command, "--state-dir", str(state_dir), *args],
        capture_output=True, text=True, timeout=180, env=clean_environ(), check=False,
    )


@pytest.fixture(scope="package")
def pseudo_gpu_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PseudoGpuCluster]:
    """A master and one two-core worker advertising the two pseudo-GPUs of :data:`PSEUDO_GPUS`."""
    state_dir = tmp_path_factory.mktemp("pseudo-gpu-cluster")
    script = write_discovery_script(
        state_dir / "pseudo_gpus.sh", json.dumps({"name": "gpu", "addresses": list(PSEUDO_GPUS)})
    )
    properties = write_worker_properties(state_dir / "worker.properties", len(PSEUDO_GPUS), script)
    try:
        started = _cluster_script(
            state_dir, "start", "--port", str(free_port()), "--webui-port", str(free_port()),
            "--workers", "1", "--cores", "2", "--memory", "1g", "--worker-properties", str(properties),
        )
        if started.returncode != 0:
            pytest.fail(f"the pseudo-GPU cluster did not start:\n{started.stdout}{started.stderr}")
        yield PseudoGpuCluster(started.stdout.strip().splitlines()[-1], state_dir)
    finally:
        stopped = _cluster_script(state_dir, "stop")
        assert stopped.returncode == 0, stopped.stderr


def run_driver(scenario: str, tmp_path: Path, *args: str, timeout_s: float = 600) -> dict[str, Any]:
    """Run ``driver.py SCENARIO`` in a child process; returns the JSON it wrote."""
    result_file = tmp_path / f"{scenario}.json"
    env = clean_environ() | {"PYSPARK_PYTHON": sys.executable}
    completed = subprocess.run(
        [sys.executable, str(DRIVER), scenario, str(result_file), *args],
        capture_output=True, text=True, timeout=timeout_s, env=env, cwd=tmp_path, check=False,
    )
    if completed.returncode != 0 or not result_file.exists():
        pytest.fail(f"driver {scenario} failed (exit {completed.returncode}):\n{completed.stderr[-6000:]}")
    return json.loads(result_file.read_text())
