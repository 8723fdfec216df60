"""Speculative copies on the standalone cluster leave no duplicates: with aggressive speculation, the first
video's extraction stalls far longer than the whole scan takes, so the scan can only finish in time if
a speculative copy of that task completes on the other worker; every stage's tasks may be copied too,
Delta's writes included. The verdicts equal a clean run's, and no key is written twice."""

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


def test_a_speculative_copy_finishes_a_stalled_task_without_duplicates(
    standalone_cluster, local_scan, clips, model_store, yunet_model, tmp_path
):
    faults = tmp_path / "faults"
    faults.mkdir()
    before = set.union(*standalone_cluster.applications().values())
    result = scan(
        tmp_path / "home", standalone_cluster.url, clips, model_store, yunet_model,
        extra_conf=AGGRESSIVE_SPECULATION,
        faults={"SCAN_FAULTS": f"pause-extract={STALL_S}", "SCAN_FAULTS_DIR": str(faults)},
    )
    finished = time.time()
    assert_succeeded(result)
    stalled_at = (faults / "pause-extract").stat().st_mtime
    assert finished - stalled_at < STALL_S, "the scan waited for the stalled attempt: no speculative copy ran"
    (application,) = set.union(*standalone_cluster.applications().values()) - before
    assert "reason: another attempt succeeded" in standalone_cluster.executor_logs(application)
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
