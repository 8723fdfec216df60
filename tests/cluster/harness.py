"""Running scans as child processes and checking what they wrote, for the cluster tests.

Every scan is ``python -m deepsift.cli scan`` in a child process with a home of its own: the pytest
process may hold a local SparkSession already (``tests/integration``), which a second context cannot
join, and embedded Derby admits one JVM per metastore. All homes share one MLflow store
(``DEEPSIFT_MLFLOW__TRACKING_URI``), so every scan loads the very same model version. Results are read
with delta-rs from the warehouse folders, without a JVM.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from deltalake import DeltaTable

from deepsift.lake.tables import FACE_SCORES, FACES, VERDICTS
from deepsift.media.sources import to_uri

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO_ROOT / "infra" / "standalone_cluster.sh"
FAULTS_PATH = Path(__file__).with_name("faults")
"""Holds the ``sitecustomize.py`` that injects faults into the scan's Python workers."""
SCAN_DATE = date(2026, 11, 23)
DELTA_FEW_PARTITIONS = {"spark.databricks.delta.snapshotPartitions": "2"}
"""The same on every master, so the runs differ only in where they run (Delta uses 50 on a cluster)."""
QUICK_EXECUTOR_JIT = {"spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
"""Executors of these short scans compile with the client compiler alone, as every driver does by default
(``spark.driver_jit``): on two shared cores the optimising compiler's threads only slow the suite."""
SCORE_TOLERANCE = 1e-6
SCAN_TIMEOUT_S = 1800
"""Per scan: one scan of the test clips took 1.5 to 2.5 minutes at a load average of 4 on 2 cores, 10 at 20."""
TEST_TIMEOUT_S = 3600
"""Per test, for ``pytest.mark.timeout``: a test may wait for the reference scan and its own."""
AGGRESSIVE_SPECULATION = {
    "spark.speculation": "true",
    "spark.speculation.interval": "100ms",
    "spark.speculation.quantile": "0.5",
    "spark.speculation.multiplier": "1.5",
    "spark.speculation.minTaskRuntime": "1s",
}
"""A copy of any task that runs 1.5 times longer than the median once half of its stage is done."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class StandaloneCluster:
    """A master and its workers started by ``infra/standalone_cluster.sh`` from ``state_dir``."""

    url: str
    state_dir: Path

    def worker_pids(self) -> dict[str, int]:
        """``worker-N`` -> pid, as the script recorded them."""
        return {path.stem: int(path.read_text()) for path in sorted(self.state_dir.glob("worker-*.pid"))}

    def applications(self) -> dict[str, set[str]]:
        """``worker-N`` -> ids of the applications it ran an executor for (one work folder each)."""
        return {
            worker: {path.name for path in (self.state_dir / worker).glob("app-*")} for worker in self.worker_pids()
        }

    def executor_logs(self, application: str) -> str:
        """The stderr of every executor of ``application``, on every worker."""
        return "\n".join(path.read_text() for path in sorted(self.state_dir.glob(f"worker-*/{application}/*/stderr")))

    def script(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), command, "--state-dir", str(self.state_dir), *args],
            capture_output=True, text=True, timeout=180, env=clean_environ(), check=False,
        )


@dataclass(frozen=True)
class ScanResult:
    """A finished scan: its home (whose tables are read with delta-rs), exit status and output."""

    home: Path
    returncode: int
    output: str

    def table(self, name: str) -> list[dict]:
        return DeltaTable(str(self.home / "warehouse" / "deepsift.db" / name)).to_pyarrow_table().to_pylist()

    def verdicts(self) -> dict[str, tuple[str, str | None, float | None]]:
        """video id -> (verdict, reason, score)."""
        return {row["video_id"]: (row["verdict"], row["reason"], row["score"]) for row in self.table("verdicts")}


@dataclass
class RunningScan:
    """A ``deepsift scan`` child process; its output goes to ``home/scan.log``."""

    home: Path
    process: subprocess.Popen

    def wait(self, timeout_s: float = SCAN_TIMEOUT_S) -> ScanResult:
        try:
            returncode = self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return ScanResult(self.home, returncode, (self.home / "scan.log").read_text())


def start_scan(
    home: Path,
    master: str,
    inputs: list[str],
    tracking_uri: str,
    yunet_model: Path,
    extra_conf: dict[str, str] | None = None,
    faults: dict[str, str] | None = None,
) -> RunningScan:
    """Start ``deepsift scan`` of ``inputs`` on ``master`` in a child process with its own ``home``.

    ``faults`` (``SCAN_FAULTS``, ``SCAN_FAULTS_DIR``) reach the Python workers only, through
    ``spark.executorEnv``, with the folder of the fault-injecting ``sitecustomize.py`` on their path.
    """
    conf = {**DELTA_FEW_PARTITIONS, **QUICK_EXECUTOR_JIT, **(extra_conf or {})}
    if faults:
        conf |= {f"spark.executorEnv.{key}": value for key, value in faults.items()}
        conf["spark.executorEnv.PYTHONPATH"] = str(FAULTS_PATH)
    if master.startswith("spark://"):
        conf["spark.driver.host"] = "127.0.0.1"  # not the host name's address, which the workers may not reach
    env = clean_environ() | {
        "DEEPSIFT_HOME": str(home),
        "DEEPSIFT_SPARK__MASTER": master,
        "DEEPSIFT_SPARK__SHUFFLE_PARTITIONS": "2",
        "DEEPSIFT_SPARK__DRIVER_MEMORY": "1g",
        "DEEPSIFT_SPARK__EXTRA_CONF": json.dumps(conf),
        "DEEPSIFT_MLFLOW__TRACKING_URI": tracking_uri,
        "DEEPSIFT_FACES__YUNET_MODEL_PATH": str(yunet_model),
        "COLUMNS": "200",
    }
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "deepsift.cli", "scan", *inputs, "--date", SCAN_DATE.isoformat()]
    with (home / "scan.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    return RunningScan(home, process)


def scan(home: Path, master: str, inputs: list[str], tracking_uri: str, yunet_model: Path, **options) -> ScanResult:
    """:func:`start_scan` and wait for it."""
    return start_scan(home, master, inputs, tracking_uri, yunet_model, **options).wait()


def assert_succeeded(result: ScanResult) -> None:
    assert result.returncode == 0, f"scan failed (exit {result.returncode}):\n{result.output[-6000:]}"


def assert_same_verdicts(result: ScanResult, reference: ScanResult, clips: list[str]) -> None:
    """One verdict per clip, equal to the reference's: verdict and reason exactly, score to 1e-6."""
    got, expected = result.verdicts(), reference.verdicts()
    uris = {row["video_id"]: row["uri"] for row in result.table("videos")}
    assert sorted(uris.values()) == sorted(to_uri(clip) for clip in clips)
    assert got.keys() == expected.keys() == uris.keys()
    for video_id, (verdict, reason, score) in expected.items():
        other = got[video_id]
        assert other[:2] == (verdict, reason), (uris[video_id], other, (verdict, reason, score))
        assert (other[2] is None) == (score is None), (uris[video_id], other[2], score)
        if score is not None:
            assert math.isclose(other[2], score, rel_tol=0, abs_tol=SCORE_TOLERANCE), (uris[video_id], other[2], score)


def assert_no_duplicates(result: ScanResult) -> None:
    """Each key of ``faces``, ``face_scores`` and ``verdicts`` appears once, and the scores cover the faces."""
    for spec in (FACES, FACE_SCORES, VERDICTS):
        keys = Counter(tuple(row[column] for column in spec.key) for row in result.table(spec.name))
        repeated = {key: count for key, count in keys.items() if count > 1}
        assert not repeated, f"{spec.name} holds repeated keys: {repeated}"
    faces = {(row["video_id"], row["frame_index"], row["face_index"]) for row in result.table("faces")}
    scored = [(row["video_id"], row["frame_index"], row["face_index"]) for row in result.table("face_scores")]
    assert len(scored) == len(faces) and set(scored) == faces


def clean_environ() -> dict[str, str]:
    """This process's environment without deepsift settings or Spark locations of the developer's own."""
    return {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DEEPSIFT_", "SPARK_", "PYSPARK_")) and key != "PYTHONPATH"
    }


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    return started_at(pid) is not None


def started_at(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (``/proc/<pid>/stat``), None once it is gone or a
    zombie. With its start time a pid names one process even after the number goes to another: pids wrap
    at ``pid_max`` (32768 on small machines), and the suite's processes and JVM threads go through that
    many within minutes."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # from the state on: the name may hold spaces
    return None if fields[0] == "Z" else int(fields[19])


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, grandparent and so on, from ``/proc`` (empty once the process is gone)."""
    chain = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state; the name may hold spaces
        chain.append(pid)
    return chain
