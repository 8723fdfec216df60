"""``infra/gpu_discovery.sh`` and what a worker does with a discovery script that prints garbage.

There is no GPU and no ``nvidia-smi`` on this machine: each script test puts a stand-in ``nvidia-smi``
first on PATH that prints what a real one would (or a broken one might).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pyspark
import pytest

from tests.gpu_scheduling.conftest import (
    REPO_ROOT,
    PseudoGpuCluster,
    clean_environ,
    write_discovery_script,
    write_worker_properties,
)

DISCOVERY = REPO_ROOT / "infra" / "gpu_discovery.sh"


def _discover(tmp_path: Path, nvidia_smi: str | None) -> subprocess.CompletedProcess[str]:
    """Run the discovery script with PATH holding only a stand-in nvidia-smi (or none at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia_smi is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        fake.chmod(0o755)
    env = {"PATH": str(bin_dir)}
    return subprocess.run(["/bin/bash", str(DISCOVERY)], capture_output=True, text=True, env=env, timeout=30, check=False)


@pytest.mark.parametrize(
    ("listing", "addresses"),
    [(r"printf '0\n1\n'", ["0", "1"]), (r"printf ' 3 \n\n7\n'", ["3", "7"]), ("printf 0", ["0"])],
)
def test_prints_the_json_spark_reads(tmp_path, listing, addresses):
    result = _discover(tmp_path, listing)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "gpu", "addresses": addresses}
    assert result.stdout.count("\n") == 1 and result.stderr == ""


@pytest.mark.parametrize(
    ("nvidia_smi", "message"),
    [
        (None, r"nvidia-smi is not on PATH; expected it to list this machine's GPU indices"),
        ("echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d1c)'",
         r"expected .* one GPU index per line \(0, 1, \.\.\.\); got: GPU 0: NVIDIA H100 80GB HBM3 \(UUID: GPU-5d1c\)"),
        ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9",
         r"exited with status 9; expected one GPU index per line\. It printed: NVIDIA-SMI has failed"),
        ("exit 0", r"nvidia-smi lists no GPU; expected at least one index"),
    ],
)
def test_fails_with_what_was_expected(tmp_path, nvidia_smi, message):
    result = _discover(tmp_path, nvidia_smi)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("gpu_discovery.sh: ")
    assert len(result.stderr.splitlines()) == 1
    assert re.search(message, result.stderr), result.stderr


def test_worker_with_a_garbage_discovery_script_does_not_start(tmp_path, pseudo_gpu_cluster: PseudoGpuCluster):
    """Spark rejects the output, logs what a correct one looks like, and the worker exits."""
    script = write_discovery_script(tmp_path / "garbage.sh", "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d1c)")
    properties = write_worker_properties(tmp_path / "worker.properties", 1, script)
    spark_home = Path(pyspark.__file__).parent
    log = tmp_path / "worker.log"
    env = clean_environ() | {"SPARK_HOME": str(spark_home), "SPARK_LOG_DIR": str(tmp_path)}
    command = [
        str(spark_home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
        "--host", "127.0.0.1", "--cores", "1", "--memory", "512m", "--webui-port", "0",
        "--work-dir", str(tmp_path / "work"), "--properties-file", str(properties), pseudo_gpu_cluster.url,
    ]
    with log.open("w") as output:
        worker = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        returncode = worker.wait(timeout=90)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert returncode != 0, text[-3000:]
    assert "Successfully registered with master" not in text
    assert "Error parsing JSON into ResourceInformation" in text
    assert "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d1c)" in text
    assert 'Here is a correct example: {"name":"gpu","addresses":["0","1"]}' in text
