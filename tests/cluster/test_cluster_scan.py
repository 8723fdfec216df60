"""The clips scanned on the two-worker standalone cluster give the verdicts of ``local[2]``, with the same
model version, both workers running the application's tasks; and speculative copies leave no
duplicates. One scan shows both, to spend one cluster application rather than two: with aggressive
speculation, the first video's extraction stalls far longer than the whole scan takes, so the scan
can only finish in time if a speculative copy of that task completes on the other worker; every
stage's tasks may be copied too, Delta's writes included."""

from __future__ import annotations

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


def test_the_cluster_gives_local_verdicts_and_speculative_copies_leave_no_duplicates(
    standalone_cluster, local_scan, clips, model_store, yunet_model, tmp_path
):
    faults = tmp_path / "faults"
    faults.mkdir()
    before = standalone_cluster.applications()
    result = scan(
        tmp_path / "home", standalone_cluster.url, clips, model_store, yunet_model,
        extra_conf=AGGRESSIVE_SPECULATION,
        faults={"SCAN_FAULTS": f"pause-extract={STALL_S}", "SCAN_FAULTS_DIR": str(faults)},
    )
    finished = time.time()
    assert_succeeded(result)

    new = {worker: apps - before[worker] for worker, apps in standalone_cluster.applications().items()}
    assert len(new) == 2 and all(len(apps) == 1 for apps in new.values()), new
    (application,) = set.union(*new.values())  # one application, with executors on both workers
    (cluster_run,), (local_run,) = result.table("scan_runs"), local_scan.table("scan_runs")
    model = ("model_uri", "model_version")
    assert [cluster_run[key] for key in model] == [local_run[key] for key in model]
    assert cluster_run["run_id"] == local_run["run_id"]  # same date, model version and preprocess version

    stalled_at = (faults / "pause-extract").stat().st_mtime
    assert finished - stalled_at < STALL_S, "the scan waited for the stalled attempt: no speculative copy ran"
    assert "reason: another attempt succeeded" in standalone_cluster.executor_logs(application)
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
