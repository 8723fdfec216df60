"""A worker killed in the middle of a scan on the standalone cluster costs a retry, not a result: the scan
completes on the surviving worker with one verdict per video, the verdicts of a clean run, and no key
written twice in ``faces``, ``face_scores`` or ``verdicts``."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.cluster.harness import (
    SCAN_TIMEOUT_S,
    TEST_TIMEOUT_S,
    alive,
    ancestors,
    assert_no_duplicates,
    assert_same_verdicts,
    assert_succeeded,
    start_scan,
)

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

PAUSE_S = 120
"""How long the first video's extraction waits for the kill; the kill ends the wait, so it costs nothing."""


def test_a_worker_killed_mid_extraction_leaves_a_complete_scan(
    standalone_cluster, local_scan, clips, model_store, yunet_model, tmp_path
):
    workers = standalone_cluster.worker_pids()
    assert len(workers) == 2 and all(alive(pid) for pid in workers.values()), "needs both workers running"
    faults = tmp_path / "faults"
    faults.mkdir()
    running = start_scan(
        tmp_path / "home", standalone_cluster.url, clips, model_store, yunet_model,
        faults={"SCAN_FAULTS": f"pause-extract={PAUSE_S}", "SCAN_FAULTS_DIR": str(faults)},
    )
    marker = faults / "pause-extract"
    deadline = time.monotonic() + SCAN_TIMEOUT_S
    while not (marker.exists() and marker.read_text()):
        if running.process.poll() is not None or time.monotonic() > deadline:
            running.wait(timeout_s=60)
            pytest.fail(f"no extraction started (scan exit {running.process.returncode}):\n"
                        f"{(running.home / 'scan.log').read_text()[-6000:]}")
        time.sleep(0.2)

    # The Spark worker whose executor runs the paused extraction: the pid is that Python worker's.
    extracting = int(marker.read_text())
    (victim,) = [name for name, pid in workers.items() if pid in ancestors(extracting)]
    os.kill(workers[victim], signal.SIGKILL)

    result = running.wait()
    assert_succeeded(result)
    assert not alive(workers[victim])
    (survivor,) = [pid for name, pid in workers.items() if name != victim]
    assert alive(survivor)
    assert "Lost executor" in result.output, "Spark never noticed the lost worker"
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
