"""A task attempt that fails once is retried and leaves no duplicates: one failure in the extract stage
and one in the detect UDF (after it has already returned a batch of scores), on ``local[2,3]`` (three
attempts per task) with aggressive speculation settings. The verdicts equal a clean run's.

Spark 4.2 never launches speculative copies in local mode (``TaskSchedulerImpl`` starts its speculation
thread only when the master is not local): the settings are on so that the run is configured as a
deployment with speculation would be; ``test_cluster_scan.py`` has copies really run, on the cluster.
"""

from __future__ import annotations

import re

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


def _lost_tasks(log: str) -> list[str]:
    """The driver's "Lost task" log records, each up to the next log line (a Python traceback is inside)."""
    records = re.split(r"\n(?=\d\d/\d\d/\d\d \d\d:\d\d:\d\d )", log)
    return [record for record in records if "TaskSetManager: Lost task" in record]


def test_failed_attempts_are_retried_without_duplicates(local_scan, clips, model_store, yunet_model, tmp_path):
    faults = tmp_path / "faults"
    faults.mkdir()
    result = scan(
        tmp_path / "home", "local[2,3]", clips, model_store, yunet_model,
        extra_conf=AGGRESSIVE_SPECULATION,
        faults={"SCAN_FAULTS": "fail-extract,fail-score", "SCAN_FAULTS_DIR": str(faults)},
    )
    assert_succeeded(result)
    assert sorted(path.name for path in faults.iterdir()) == ["fail-extract", "fail-score"]
    lost = _lost_tasks(result.output)
    for fault in ("fail-extract", "fail-score"):
        failed = [record for record in lost if f"InjectedFault: {fault}:" in record]
        assert len(failed) == 1, f"Spark should log one failed attempt for {fault}, not {len(failed)}:\n{lost}"
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
