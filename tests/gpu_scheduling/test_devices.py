"""The detect task's device choice and the driver's profile decision, without Spark or a GPU.

This machine has no GPU: wherever a test needs one, the number of CUDA devices torch would see is
passed in explicitly (``cuda_devices``), standing in for the GPUs that are not here.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from deepsift.config import ConfigError, DetectConfig, load_config
from deepsift.detect.arrow_scoring import crop_decode_threads
from deepsift.detect.devices import (
    DETECT_OUTPUT_SCHEMA,
    DeviceChoice,
    GpuSchedulingError,
    choose_device,
    detect_udf,
    is_local_master,
    profile_gpu_amount,
)
from deepsift.detect.scoring import FaceScorer


@pytest.mark.parametrize(
    ("setting", "task_gpus", "cuda_devices", "expected"),
    [
        ("auto", ("1",), 2, DeviceChoice("cuda:1", "resource_profile")),
        ("auto", ("0",), 2, DeviceChoice("cuda:0", "resource_profile")),
        ("cuda", ("3", "2"), 4, DeviceChoice("cuda:3", "resource_profile")),
        ("auto", (), 2, DeviceChoice("cuda:0", "local_gpu")),
        ("cuda", (), 1, DeviceChoice("cuda:0", "local_gpu")),
        ("auto", (), 0, DeviceChoice("cpu", "cpu")),
        ("cpu", ("1",), 2, DeviceChoice("cpu", "cpu")),
        ("cpu", (), 2, DeviceChoice("cpu", "cpu")),
    ],
)
def test_device_follows_the_address_spark_assigned(setting, task_gpus, cuda_devices, expected):
    assert choose_device(setting, task_gpus, cuda_devices) == expected


def test_gpu_tasks_decode_crops_on_a_pool_and_cpu_tasks_on_their_one_core() -> None:
    assert crop_decode_threads("cpu") == 1
    assert 1 <= crop_decode_threads("cuda:0") <= 16


def test_a_gpu_torch_cannot_use_fails_instead_of_running_on_the_cpu():
    with pytest.raises(GpuSchedulingError, match=r"assigned this detect task GPU '1'.*torch sees no CUDA device"):
        choose_device("auto", ("1",), cuda_devices=0)
    with pytest.raises(GpuSchedulingError, match=r"address '2'.*CUDA devices 0 to 1.*nvidia-smi indices"):
        choose_device("auto", ("2",), cuda_devices=2)
    with pytest.raises(GpuSchedulingError, match=r"address 'GPU-5d1c'.*nvidia-smi indices"):
        choose_device("auto", ("GPU-5d1c",), cuda_devices=2)
    with pytest.raises(GpuSchedulingError, match=r"detect\.device is cuda.*no GPU"):
        choose_device("cuda", (), cuda_devices=0)


def test_only_plain_local_masters_count_as_local():
    assert [is_local_master(m) for m in ("local", "local[2]", "local[*]", "local[2,3]")] == [True] * 4
    assert [is_local_master(m) for m in ("local-cluster[2,1,1024]", "spark://127.0.0.1:7077", "yarn")] == [False] * 3


@pytest.mark.parametrize(
    ("detect", "master", "executor_gpus", "local_cuda", "expected"),
    [
        (DetectConfig(), "spark://h:7077", "2", 0, 1.0),
        (DetectConfig(gpu_amount_per_task=0.25), "k8s://https://api", "1", 0, 0.25),
        (DetectConfig(gpu_amount_per_task=2), "local-cluster[1,2,1024]", "2", 0, 2.0),
        (DetectConfig(), "spark://h:7077", None, 0, None),
        (DetectConfig(device="cpu"), "spark://h:7077", "2", 0, None),
        (DetectConfig(), "local[2]", None, 1, None),
        (DetectConfig(device="cuda"), "local[*]", None, 1, None),
        (DetectConfig(), "local[*]", "2", 0, None),
    ],
)
def test_profile_only_on_a_cluster_whose_executors_have_gpus(detect, master, executor_gpus, local_cuda, expected):
    assert profile_gpu_amount(detect, master, executor_gpus, local_cuda) == expected


def test_settings_that_can_never_give_a_gpu_fail_on_the_driver_naming_them():
    with pytest.raises(GpuSchedulingError, match=r"detect\.device is cuda.*spark\.executor\.resource\.gpu\.amount.*"
                       r"spark\.worker\.resource\.gpu\.amount and spark\.worker\.resource\.gpu\.discoveryScript"):
        profile_gpu_amount(DetectConfig(device="cuda"), "spark://h:7077", None, 0)
    with pytest.raises(GpuSchedulingError, match=r"gpu_amount_per_task is 3.*spark\.executor\.resource\.gpu\.amount=2"):
        profile_gpu_amount(DetectConfig(gpu_amount_per_task=3), "spark://h:7077", "2", 0)
    with pytest.raises(GpuSchedulingError, match=r"detect\.device is cuda.*local mode \(local\[2\]\).*no CUDA device"):
        profile_gpu_amount(DetectConfig(device="cuda"), "local[2]", None, 0)


@pytest.mark.parametrize("amount", ["0.5", "1", "0.125", "2", "8"])
def test_gpu_amount_per_task_takes_shares_and_whole_gpus(amount):
    config = load_config(environ={"DEEPSIFT_DETECT__GPU_AMOUNT_PER_TASK": amount})
    assert config.detect.gpu_amount_per_task == float(amount)


@pytest.mark.parametrize("amount", ["0", "-1", "1.5", ".nan", "many"])
def test_bad_gpu_amount_names_the_key_and_what_is_allowed(amount):
    with pytest.raises(ConfigError, match=r"detect\.gpu_amount_per_task: .*(at most 1.*whole number|valid number)"):
        load_config(environ={"DEEPSIFT_DETECT__GPU_AMOUNT_PER_TASK": amount})


def test_bad_device_names_the_allowed_values():
    with pytest.raises(ConfigError, match=r"detect\.device: .*'auto', 'cpu' or 'cuda'.*'gpu'"):
        load_config(environ={"DEEPSIFT_DETECT__DEVICE": "gpu"})


def _crop_batch(crops: int) -> pa.RecordBatch:
    import cv2
    import numpy as np

    encoded = [cv2.imencode(".png", np.full((32, 32, 3), 40 * i, np.uint8))[1].tobytes() for i in range(crops)]
    return pa.RecordBatch.from_pydict({
        "video_id": ["v"] * crops,
        "frame_index": pa.array(range(crops), pa.int32()),
        "face_index": pa.array([0] * crops, pa.int32()),
        "crop": encoded,
    })


@pytest.mark.parametrize(("cuda_devices", "device", "path"), [(0, "cpu", "cpu"), (2, "cuda:0", "local_gpu")])
def test_udf_outside_a_profile_loads_on_the_chosen_device_and_tags_rows(cuda_devices, device, path):
    """No TaskContext here (as in local mode without a profile): the UDF falls back to a visible GPU."""
    from torch import nn

    from deepsift.detect.contract import PreprocessContract

    asked: list[str] = []

    def load(chosen: str) -> FaceScorer:
        asked.append(chosen)  # a stand-in: the scorer itself runs on the CPU, there is no GPU here
        contract = PreprocessContract(architecture="mobilenetv3_small_050", input_size=32)
        return FaceScorer(nn.Sequential(nn.Flatten(), nn.Linear(32 * 32 * 3, 1)), contract, device="cpu")

    udf = detect_udf(load, DetectConfig(cpu_batch_size=2, gpu_batch_size=2), cuda_devices=lambda: cuda_devices)
    out = pa.Table.from_batches(list(udf(iter([_crop_batch(3)]))))
    assert set(asked) == {device}
    assert out.column_names == [field.split()[0] for field in DETECT_OUTPUT_SCHEMA.split(", ")]
    assert out["detect_path"].to_pylist() == [path] * 3
    assert out["frame_index"].to_pylist() == [0, 1, 2]
