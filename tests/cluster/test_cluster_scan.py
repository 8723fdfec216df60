"""The same clips scanned on the two-worker standalone cluster and on ``local[2]`` give the same verdicts,
with the same model version, and both workers really ran the application's tasks."""

from __future__ import annotations

import pytest

from tests.cluster.harness import TEST_TIMEOUT_S, assert_no_duplicates, assert_same_verdicts, assert_succeeded, scan

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)


def test_the_cluster_gives_the_verdicts_of_local_mode(
    standalone_cluster, local_scan, clips, model_store, yunet_model, tmp_path
):
    before = standalone_cluster.applications()
    result = scan(tmp_path / "home", standalone_cluster.url, clips, model_store, yunet_model)
    assert_succeeded(result)

    new = {worker: apps - before[worker] for worker, apps in standalone_cluster.applications().items()}
    assert len(new) == 2 and all(len(apps) == 1 for apps in new.values()), new
    assert len(set.union(*new.values())) == 1, f"one application on both workers: {new}"

    (cluster_run,), (local_run,) = result.table("scan_runs"), local_scan.table("scan_runs")
    model = ("model_uri", "model_version")
    assert [cluster_run[key] for key in model] == [local_run[key] for key in model]
    assert cluster_run["run_id"] == local_run["run_id"]  # same date, model version and preprocess version
    assert_same_verdicts(result, local_scan, clips)
    assert_no_duplicates(result)
