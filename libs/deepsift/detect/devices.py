"""Which device a detect task scores on, and how the detect stage alone asks Spark for GPUs.

Three paths, one of which each scan records in ``scan_runs.detect_path``:

* ``resource_profile``: the master is a cluster and executors have GPUs
  (``spark.executor.resource.gpu.amount``). The detect stage, and only it, carries a Spark
  ResourceProfile asking ``detect.gpu_amount_per_task`` GPUs per task and nothing of executors (a
  task resource profile: it runs on the executors already there, with dynamic allocation off), so
  decode and face stages hold no GPU. Spark hands each detect task its GPU address(es); the task
  scores on ``cuda:<first address>``. Addresses are ``nvidia-smi`` indices
  (``infra/gpu_discovery.sh``), which are torch's device indices while ``CUDA_VISIBLE_DEVICES`` does
  not renumber them.
* ``local_gpu``: no profile (local mode, where Spark refuses task resource profiles, or a cluster
  whose executors have no GPUs configured); a task that sees a GPU uses the first one.
* ``cpu``: no GPU, or ``detect.device: cpu``.

The choice itself (:func:`choose_device`) is a pure function of the setting, the task's addresses and
the number of CUDA devices torch sees, so it is tested without a GPU. pyspark is imported only inside
the functions that need it: executors import this module before any Spark call. torch too: a host
without a GPU driver has no CUDA device to count (:func:`visible_cuda_devices`), and a CPU task that
scores a cached ONNX graph never imports torch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from deepsift.config import DetectConfig, DetectDevice
from deepsift.detect.arrow_scoring import SCORED_SCHEMA, crop_decode_threads, score_crop_batches
from deepsift.detect.scoring import FaceScorer
from deepsift.errors import DeepsiftError
from deepsift.lake.schemas import spark_ddl

if TYPE_CHECKING:
    from pyspark.resource import ResourceProfile
    from pyspark.sql import SparkSession

DetectPath = Literal["resource_profile", "local_gpu", "cpu"]
"""How a detect task got its device (see the module docstring)."""

GPU_RESOURCE = "gpu"
"""The Spark resource name deepsift asks for; workers and executors must advertise GPUs under it."""
EXECUTOR_GPU_CONF = "spark.executor.resource.gpu.amount"
WORKER_GPU_CONFS = "spark.worker.resource.gpu.amount and spark.worker.resource.gpu.discoveryScript"

DETECT_OUTPUT_SCHEMA = spark_ddl(
    pa.schema([*SCORED_SCHEMA, pa.field("detect_path", pa.string()), pa.field("detect_engine", pa.string())])
)
"""What :func:`detect_udf` returns: the scored face's key, its score, the task's :data:`DetectPath` and what
ran the network (``torch``, or ``onnxruntime`` on a CPU: ``FaceScorer.engine``)."""

ArrowUdf = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]

class GpuSchedulingError(DeepsiftError, RuntimeError):
    """The detect stage cannot get the GPUs it is configured for; the message names the settings."""


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    """A torch device: ``cuda:<index>`` or ``cpu``."""
    path: DetectPath


def choose_device(setting: DetectDevice, task_gpus: Sequence[str], cuda_devices: int) -> DeviceChoice:
    """The device one detect task scores on.

    ``task_gpus`` are the GPU addresses Spark assigned to the task (none without a resource
    profile); ``cuda_devices`` is how many CUDA devices torch sees in this process. A task given a
    GPU that torch cannot use fails rather than running many times slower on the CPU.

    >>> choose_device("auto", ["1"], cuda_devices=2)
    DeviceChoice(device='cuda:1', path='resource_profile')
    >>> choose_device("auto", [], cuda_devices=0)
    DeviceChoice(device='cpu', path='cpu')
    """
    if setting == "cpu":
        return DeviceChoice("cpu", "cpu")
    if task_gpus:
        address = task_gpus[0]
        if cuda_devices == 0:
            raise GpuSchedulingError(
                f"Spark assigned this detect task GPU {address!r}, but torch sees no CUDA device here "
                f"(torch.cuda.is_available() is False): install a CUDA build of torch on the executors, "
                f"or give executors no GPUs ({EXECUTOR_GPU_CONF})"
            )
        if not address.isdigit() or int(address) >= cuda_devices:
            raise GpuSchedulingError(
                f"Spark assigned this detect task GPU address {address!r}, but torch sees CUDA devices "
                f"0 to {cuda_devices - 1}: the discovery script must report nvidia-smi indices, and "
                f"CUDA_VISIBLE_DEVICES must not renumber them"
            )
        return DeviceChoice(f"cuda:{int(address)}", "resource_profile")
    if cuda_devices > 0:
        return DeviceChoice("cuda:0", "local_gpu")
    if setting == "cuda":
        raise GpuSchedulingError(
            "detect.device is cuda, but this detect task has no GPU: Spark assigned it none and torch sees "
            "no CUDA device"
        )
    return DeviceChoice("cpu", "cpu")


def task_gpu_addresses() -> tuple[str, ...]:
    """The GPU addresses Spark assigned to the running task; empty outside a task or without a profile."""
    from pyspark import TaskContext

    context = TaskContext.get()
    gpu = context.resources().get(GPU_RESOURCE) if context is not None else None
    return tuple(gpu.addresses) if gpu is not None else ()


GPU_DRIVER_NODES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
"""What a GPU driver torch can use leaves on a host (NVIDIA, ROCm, WSL 2); with none of them there is
no CUDA device, and :func:`visible_cuda_devices` says so without importing torch (seconds a worker)."""


def visible_cuda_devices() -> int:
    """How many CUDA devices torch can use in this process (0 without CUDA)."""
    if not any(os.path.exists(node) for node in GPU_DRIVER_NODES):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def detect_udf(
    load_scorer: Callable[[str], FaceScorer],
    detect: DetectConfig,
    cuda_devices: Callable[[], int] = visible_cuda_devices,
) -> ArrowUdf:
    """The detect stage's ``mapInArrow`` body: pick the task's device once, then score its crops.

    ``load_scorer(device)`` must return a process-wide cached scorer on that device
    (``deepsift.registry.version_files.shared_scorer``). Output rows follow :data:`DETECT_OUTPUT_SCHEMA`: each
    carries the task's path and engine, so the driver records what tasks really did, not what it hoped.
    Crops go ``detect.batch_size(device)`` to a forward pass.
    """

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # detect.device cpu needs no count of CUDA devices: it never looks for a GPU driver or torch
        choice = choose_device(detect.device, task_gpu_addresses(), 0 if detect.device == "cpu" else cuda_devices())
        threads = crop_decode_threads(choice.device)
        batch_size = detect.batch_size(choice.device)
        for scored in score_crop_batches(batches, lambda: load_scorer(choice.device), batch_size, threads):
            engine = load_scorer(choice.device).engine  # loaded by now: the batch was scored with it
            yield scored.append_column(
                "detect_path", pa.array([choice.path] * scored.num_rows, pa.string())
            ).append_column("detect_engine", pa.array([engine] * scored.num_rows, pa.string()))

    return score_partition


def is_local_master(master: str) -> bool:
    """``local``, ``local[N]``, ``local[*]``, ``local[N,F]``: one JVM, no task resource profiles.

    ``local-cluster[...]`` runs standalone workers, so it is not local here.
    """
    return master == "local" or master.startswith("local[")


def profile_gpu_amount(
    detect: DetectConfig, master: str, executor_gpus: str | None, local_cuda_devices: int
) -> float | None:
    """GPUs per detect task to ask Spark for, or None where the stage runs without a profile.

    ``executor_gpus`` is the application's ``spark.executor.resource.gpu.amount`` (None when unset);
    ``local_cuda_devices`` the CUDA devices the driver sees (what local-mode tasks will see).
    Settings that can never give the detect stage a GPU it is told to use fail here, on the driver.
    """
    if detect.device == "cpu":
        return None
    if is_local_master(master):
        if detect.device == "cuda" and local_cuda_devices == 0:
            raise GpuSchedulingError(
                f"detect.device is cuda, but Spark runs in local mode ({master}) and torch sees no CUDA "
                "device on this machine"
            )
        return None
    per_executor = _gpu_amount(executor_gpus)
    if per_executor == 0:
        if detect.device == "cuda":
            raise GpuSchedulingError(
                f"detect.device is cuda, but executors have no GPUs: set {EXECUTOR_GPU_CONF} (in "
                f"spark.extra_conf) to the GPUs each executor gets; standalone workers advertise theirs "
                f"with {WORKER_GPU_CONFS} (infra/gpu_discovery.sh)"
            )
        return None
    if detect.gpu_amount_per_task > per_executor:
        raise GpuSchedulingError(
            f"detect.gpu_amount_per_task is {detect.gpu_amount_per_task:g}, but each executor gets "
            f"{EXECUTOR_GPU_CONF}={executor_gpus}: a detect task can hold at most that many"
        )
    return detect.gpu_amount_per_task


def detect_profile(gpu_amount: float) -> ResourceProfile:
    """A ResourceProfile asking ``gpu_amount`` GPUs per task and nothing of executors.

    With no executor requests Spark builds a task resource profile, which runs on the executors the
    application already has instead of asking the cluster for new ones.
    """
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    return ResourceProfileBuilder().require(TaskResourceRequests().resource(GPU_RESOURCE, gpu_amount)).build


def plan_detect(spark: SparkSession, detect: DetectConfig) -> ResourceProfile | None:
    """The ResourceProfile for this application's detect stage, or None to run it without one.

    Before a profile is returned, executors must be seen advertising enough GPUs
    (:func:`require_gpu_executors`): Spark would otherwise hold the stage pending forever.
    """
    context = spark.sparkContext
    assert context.master is not None
    local = is_local_master(context.master)
    gpu_amount = profile_gpu_amount(
        detect, context.master, context.getConf().get(EXECUTOR_GPU_CONF), visible_cuda_devices() if local else 0
    )
    if gpu_amount is None:
        return None
    require_gpu_executors(spark, gpu_amount, detect.executor_wait_s)
    return detect_profile(gpu_amount)


def executor_gpus(spark: SparkSession) -> dict[str, tuple[str, ...]]:
    """The GPU addresses each registered executor advertises, by executor id (the driver excluded).

    Read from Spark's status store, the source of the UI's executors page (the public status
    tracker does not report resources); it works with the UI disabled.
    """
    summaries = spark.sparkContext._jsc.sc().statusStore().executorList(True)  # noqa: SLF001 - the status store has no Python API
    found: dict[str, tuple[str, ...]] = {}
    for index in range(summaries.size()):
        summary = summaries.apply(index)
        if summary.id() == "driver":
            continue
        gpu = summary.resources().get(GPU_RESOURCE)
        found[summary.id()] = tuple(gpu.get().addresses()) if gpu.isDefined() else ()
    return found


def require_gpu_executors(spark: SparkSession, gpu_amount: float, wait_s: float) -> None:
    """Fail unless some executor advertises the GPUs one detect task asks for.

    Waits up to ``wait_s`` for a first executor to register: a worker lacking the GPUs each executor
    asks for never launches one, and the stage would wait forever. Assumes dynamic allocation is off,
    as task resource profiles want: with it on, an idle application may have no executor to look at.
    """
    deadline = time.monotonic() + wait_s
    executors = executor_gpus(spark)
    while not executors and time.monotonic() < deadline:
        time.sleep(0.5)
        executors = executor_gpus(spark)
    asked = spark.sparkContext.getConf().get(EXECUTOR_GPU_CONF)
    if not executors:
        raise GpuSchedulingError(
            f"no executor registered within {wait_s:g} s (detect.executor_wait_s), so the detect stage "
            f"could never run. Each executor asks for {EXECUTOR_GPU_CONF}={asked} GPUs: a standalone "
            f"worker launches one only if it advertises at least that many ({WORKER_GPU_CONFS}, e.g. "
            "infra/gpu_discovery.sh) and has free cores"
        )
    needed = max(1, math.ceil(gpu_amount))
    if not any(len(addresses) >= needed for addresses in executors.values()):
        advertised = ", ".join(
            f"executor {executor}: {list(addresses) if addresses else 'no gpu'}"
            for executor, addresses in sorted(executors.items())
        )
        raise GpuSchedulingError(
            f"the detect stage asks {gpu_amount:g} GPU per task (detect.gpu_amount_per_task), but no executor "
            f"advertises {needed} or more ({advertised}): give executors GPUs with {EXECUTOR_GPU_CONF} and "
            f"their workers with {WORKER_GPU_CONFS}, or set detect.device to cpu"
        )


def _gpu_amount(value: str | None) -> float:
    """``spark.executor.resource.gpu.amount`` as a number (Spark has already checked it is one); unset is 0."""
    return float(value) if value else 0.0
