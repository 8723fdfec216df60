"""The clips scanned on the two-worker standalone cluster give the verdicts of ``local[2]``, with the same
model version, both workers running the application's tasks; failed task attempts are retried and
speculative copies run, and neither leaves duplicates. One scan shows all of it, to spend one cluster
application rather than three:

- one extract attempt fails on opening a video, and the detect UDF fails once after it has already
  returned a batch of scores: Spark must log one lost attempt for each and retry it;
- with aggressive speculation, the next video's extraction stalls far longer than the whole scan
  takes, so the scan can only finish in time if a speculative copy of that task completes on the other
  worker; every stage's tasks may be copied too, Delta's writes included.

Spark 4.2 never launches speculative copies in local mode (``TaskSchedulerImpl`` starts its speculation
thread only when the master is not local), so these faults are injected on the cluster.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.harness import (
    AGGRESSIVE_SPECULATION,
    TEST_TIMEOUT_S,
    assert_no_duplicates,
    assert_same_verdicts,
    assert_succeeded,
    scan,
)

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

STALL_S = 600
FAILING_ONCE = ("fail-extract", "fail-score")


def _lost_tasks(log: str) -> list[str]:
    """The driver's "Lost task" log records, each up to the next log line (a Python traceback is inside)."""
    records = re.split(r"\n(?=\d\d/\d\d/\d\d \d\d:\d\d:\d\d )", log)
    return [record for record in records if "TaskSetManager: Lost task" in record]


def test_the_cluster_gives_local_verdicts_and_retries_and_speculative_copies_leave_no_duplicates(
    standalone_cluster, local_scan, clips, model_store, yunet_model, tmp_path
):
    faults = tmp_path / "faults"
    faults.mkdir()
    before = standalone_cluster.applications()
    result = scan(
        tmp_path / "home", standalone_cluster.url, clips, model_store, yunet_model,
        extra_conf=AGGRESSIVE_SPECULATION,
        faults={"SCAN_FAULTS": f"{','.join(FAILING_ONCE)},pause-extract={STALL_S}", "SCAN_FAULTS_DIR": str(faults)},
    )
    finished = time.time()
    assert_succeeded(result)
    assert sorted(path.name for path in faults.iterdir()) == sorted([*FAILING_ONCE, "pause-extract"])

    new = {worker: apps - before[worker] for worker, apps in standalone_cluster.applications().items()}
    assert len(new) == 2 and all(len(apps) == 1 for apps in new.values()), new
    (application,) = set.union(*new.values())  # one application, with executors on both workers
    (cluster_run,), (local_run,) = result.table("scan_runs"), local_scan.table("scan_runs")
    model = ("model_uri", "model_version")
    assert [cluster_run[key] for key in model] == [local_run[key] for key in model]
    assert cluster_run["run_id"] == local_run["run_id"]  # same date, model version and preprocess version

    lost = _lost_tasks(result.output)
    for fault in FAILING_ONCE:
        failed = [record for record in lost if f"InjectedFault: {fault}:" in record]
        assert len(failed) == 1, f"Spark should log one failed attempt for {fault}, not {len(failed)}:\n{lost}"
    stalled_at = (faults / "pause-extract").stat().st_mtime
    assert finished - stalled_at < STALL_S, "the scan waited for the stalled attempt: no speculative copy ran"
    assert "reason: another attempt succeeded" in standalone_cluster.executor_logs(application)
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
