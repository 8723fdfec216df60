"""Stage-level GPU scheduling on a real standalone cluster whose worker advertises two pseudo-GPUs.

A child driver (``driver.py scheduling``) runs a decode-like stage, the detect stage exactly as
``score_faces`` builds it (``plan_detect``'s profile on ``mapInArrow`` over ``detect_udf``) and a stage
after it; every task records ``TaskContext.resources()``. It then starts a second application whose
executors ask for more GPUs than the worker has. The GPUs are stand-ins (see ``conftest``),
and so is CUDA in the detect UDF: it is told torch sees two CUDA devices, and its model loader records
the device it was asked for and scores on the CPU.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from tests.gpu_scheduling.conftest import PSEUDO_GPUS, PseudoGpuCluster, run_driver

AMOUNTS = (1.0, 0.5)
CROPS = 8
PARTITIONS = 4


@pytest.fixture(scope="module")
def scheduled(pseudo_gpu_cluster: PseudoGpuCluster, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("scheduling")
    records = work / "records"
    result = run_driver("scheduling", work, pseudo_gpu_cluster.url, str(records))
    tasks = {
        amount: [json.loads(path.read_text()) for path in sorted((records / str(amount)).glob("*.json"))]
        for amount in AMOUNTS
    }
    return result, tasks


def _by_kind(tasks: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = defaultdict(list)
    for task in tasks:
        kinds[task["kind"]].append(task)
    return kinds


def test_executor_advertises_the_worker_pseudo_gpus(scheduled):
    result, _ = scheduled
    assert sorted(map(sorted, result["executors"].values())) == [sorted(PSEUDO_GPUS)]


@pytest.mark.parametrize("amount", AMOUNTS)
def test_only_detect_tasks_hold_a_gpu(scheduled, amount):
    _, tasks = scheduled
    kinds = _by_kind(tasks[amount])
    assert set(kinds) == {"decode", "detect", "after"}
    for kind in ("decode", "after"):
        assert [task["resources"] for task in kinds[kind]] == [{}] * len(kinds[kind]), kind
    detect_stages = {task["stage"] for task in kinds["detect"]}
    other_stages = {task["stage"] for kind in ("decode", "after") for task in kinds[kind]}
    assert len(detect_stages) == 1 and not detect_stages & other_stages
    assert sorted(task["partition"] for task in kinds["detect"]) == list(range(PARTITIONS))


@pytest.mark.parametrize("amount", AMOUNTS)
def test_each_detect_task_scores_on_the_one_address_it_was_given(scheduled, amount):
    _, tasks = scheduled
    for task in _by_kind(tasks[amount])["detect"]:
        assert set(task["resources"]) == {"gpu"}
        (address,) = task["resources"]["gpu"]
        assert address in PSEUDO_GPUS
        assert task["device"] == f"cuda:{address}"


@pytest.mark.parametrize("amount", AMOUNTS)
def test_no_address_is_held_by_more_tasks_at_once_than_the_amount_allows(scheduled, amount):
    """With 1 GPU per task, overlapping tasks hold different GPUs; with 0.5, at most two share one."""
    _, tasks = scheduled
    detect = _by_kind(tasks[amount])["detect"]
    per_address = int(1 / amount)
    for task in detect:
        at_that_moment = Counter(
            other["resources"]["gpu"][0] for other in detect if other["start"] <= task["start"] < other["end"]
        )
        assert max(at_that_moment.values()) <= per_address, (amount, at_that_moment)


@pytest.mark.parametrize("amount", AMOUNTS)
def test_every_face_is_scored_on_the_resource_profile_path(scheduled, amount):
    result, _ = scheduled
    rows = result[str(amount)]
    assert sorted(row["frame_index"] for row in rows) == list(range(CROPS))
    assert {row["detect_path"] for row in rows} == {"resource_profile"}
    assert all(0.0 <= row["score"] <= 1.0 for row in rows)


def test_profile_asking_more_gpus_than_executors_have_fails_naming_the_settings(scheduled):
    result, _ = scheduled
    assert "detect.gpu_amount_per_task is 3" in result["over_ask_error"]
    assert "spark.executor.resource.gpu.amount=2" in result["over_ask_error"]
    advertised = result["too_few_advertised_error"]
    assert "asks 3 GPU per task (detect.gpu_amount_per_task), but no executor advertises 3 or more" in advertised
    (executor,) = result["executors"]
    assert f"executor {executor}: {sorted(PSEUDO_GPUS)}" in advertised
    assert "spark.executor.resource.gpu.amount" in advertised and "spark.worker.resource.gpu.amount" in advertised


def test_worker_without_the_gpus_executors_ask_for_fails_fast(scheduled):
    """Executors ask for 3 GPUs each and the worker has 2: none ever starts, and Spark alone would wait
    forever; the detect stage gives up after ``detect.executor_wait_s`` saying what it needed."""
    result, _ = scheduled
    result = result["no_executors"]
    error = result["error"]
    assert error is not None
    assert "no executor registered within 3 s (detect.executor_wait_s)" in error
    assert "spark.executor.resource.gpu.amount=3" in error
    assert "spark.worker.resource.gpu.amount and spark.worker.resource.gpu.discoveryScript" in error
    assert 3 <= result["seconds"] < 30
