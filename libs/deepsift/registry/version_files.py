"""A version's two files turned into a scorer without MLflow: in the pyfunc, in the registry, and on
executors, to which the scan's driver ships them.

The scan's driver resolves a version in MLflow, downloads its weights and contract once
(:meth:`~deepsift.registry.mlflow_models.DetectorRegistry.version_files`) and hands them to Spark
(:func:`ship_version`, ``SparkContext.addFile``); each executor then reads its own copy
(:meth:`ShippedVersion.local_files`, ``SparkFiles``). So executors never open the tracking store: they
need no access to it, and a scoring worker does not import MLflow (about 1.2 s) nor open its SQL store
(about 1 s) before its first batch. This module imports neither MLflow nor torch: torch and timm load
only where a network is built (no cached ONNX graph, or the torch engine).

Shipped files are named by the SHA-256 of their bytes: Spark serves an added file by its name for the
SparkContext's life and refuses one name for two paths, so one name must always mean one content.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deepsift.config import CpuEngine
from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.detect.graph_cache import GraphCache, VersionFiles
from deepsift.detect.onnx_graph import session_threads
from deepsift.files import file_sha256, replaced_on_success
from deepsift.registry.checkpoints import load_into_network
from deepsift.registry.errors import CheckpointMismatchError, ContractMissingError, ModelArtifactError, first_line

if TYPE_CHECKING:
    import torch
    from pyspark.sql import SparkSession

    from deepsift.detect.scoring import FaceScorer

STATE_DICT_FILE = "state_dict.pt"
KEPT_SHIPPED_FILES = 16
"""Shipped files the driver's folder keeps, the most recently shipped (eight versions' two files)."""

_SCORERS: dict[str, tuple[tuple[VersionFiles, CpuEngine], FaceScorer]] = {}
"""This process's loaded model, by device (``cuda:1``, ``cpu``): one version at most, on each device a
task of this worker was given."""


def read_contract(path: Path, label: str) -> PreprocessContract:
    """Parse a stored ``contract.json``; anything unreadable is :class:`ContractMissingError`."""
    try:
        return PreprocessContract.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ContractMissingError(f"{label}: {CONTRACT_FILE} is unreadable ({first_line(error)})") from None


def scorer_from_files(
    state_dict_path: Path,
    contract_path: Path,
    label: str,
    device: str | torch.device | None = None,
    cpu_engine: CpuEngine = "torch",
    graph_cache: GraphCache | None = None,
) -> FaceScorer:
    """Build a :class:`FaceScorer` from a version's two files; the pyfunc, the registry and executors share it.

    Errors name ``label`` (e.g. ``"deepsift-detector version 3"``) and the file. ``graph_cache``, for
    a scorer on ONNX Runtime on the CPU only: its graph is used when there, without torch; else the
    exported graph is kept there once its first batch matched torch's scores.
    """
    from deepsift.detect.scoring import FaceScorer

    contract = read_contract(contract_path, label)
    if graph_cache is not None:
        graph = graph_cache.load(session_threads())
        if graph is not None:
            return FaceScorer.from_checked_graph(graph, contract)
    import torch

    from deepsift.detect.architectures import UnknownArchitectureError

    try:
        state_dict = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage bytes raise UnpicklingError, RuntimeError, EOFError, ...
        raise ModelArtifactError(
            f"{label}: {STATE_DICT_FILE} is not a readable weights-only state dict ({first_line(error)})"
        ) from None
    if not isinstance(state_dict, Mapping):
        raise ModelArtifactError(f"{label}: {STATE_DICT_FILE} holds a {type(state_dict).__name__}, not a state dict")
    try:
        network = load_into_network(contract.architecture, state_dict)
    except (CheckpointMismatchError, UnknownArchitectureError) as error:
        raise ModelArtifactError(f"{label}: {STATE_DICT_FILE} does not fit its contract: {error}") from None
    return FaceScorer(network, contract, device, cpu_engine, None if graph_cache is None else graph_cache.keep)


def scorer_for_version(
    files: VersionFiles, device: str | torch.device | None = None, cpu_engine: CpuEngine = "torch"
) -> FaceScorer:
    """A :class:`FaceScorer` for one version's downloaded ``files``, on ONNX Runtime through this host's
    graph cache (:mod:`deepsift.detect.graph_cache`) when ``cpu_engine`` asks for it on the CPU."""
    on_onnx = cpu_engine == "onnxruntime" and str(device) == "cpu"
    cache = GraphCache.for_version(files) if on_onnx else None
    label = f"{files.model_name} version {files.version}"
    return scorer_from_files(files.state_dict, files.contract, label, device, cpu_engine, cache)


def shared_scorer(files: VersionFiles, cpu_engine: CpuEngine = "torch", device: str | None = None) -> FaceScorer:
    """This process's scorer for one version's ``files`` on ``device``, loaded once and kept warm.

    ``device`` is the task's (``deepsift.detect.devices.choose_device``); None means a visible GPU,
    else the CPU. Spark reuses Python workers across tasks, so every partition a worker runs on one
    device shares the one load; a task given another GPU gets a model on that GPU, never one on the
    wrong device. Asking for another version drops every loaded one, so a worker never holds two
    versions' memory.
    """
    if device is None:
        from deepsift.detect.scoring import default_device

        device = str(default_device())
    key = (files, cpu_engine)
    if any(loaded_key != key for loaded_key, _ in _SCORERS.values()):
        _SCORERS.clear()
    if device not in _SCORERS:
        _SCORERS[device] = (key, scorer_for_version(files, device, cpu_engine))
    return _SCORERS[device][1]


@dataclass(frozen=True)
class ShippedVersion:
    """One version's files as the driver added them to the SparkContext: what an executor needs to find
    its copies and to key its graph cache, nothing that opens the store."""

    tracking_uri: str
    registry_uri: str
    model_name: str
    version: int
    state_dict_name: str
    contract_name: str

    def local_files(self) -> VersionFiles:
        """This process's copies (``SparkFiles``: on an executor, or on the driver that shipped them)."""
        from pyspark import SparkFiles

        return VersionFiles(
            self.tracking_uri,
            self.registry_uri,
            self.model_name,
            self.version,
            Path(SparkFiles.get(self.state_dict_name)),
            Path(SparkFiles.get(self.contract_name)),
        )


def shipped_scorer_loader(shipped: ShippedVersion, cpu_engine: CpuEngine) -> Callable[[str], FaceScorer]:
    """What the detect UDF calls for its task's device (``deepsift.detect.devices.detect_udf``): this
    worker's scorer of the shipped version. Pickled into the UDF, it brings this module into the
    workers, not the scan's MLflow and Spark code."""
    return lambda device: shared_scorer(shipped.local_files(), cpu_engine, device)


def ship_version(spark: SparkSession, files: VersionFiles, folder: Path) -> ShippedVersion:
    """Copy ``files`` into ``folder`` under names made of their SHA-256 and add them to the SparkContext,
    once per context; the folder keeps the :data:`KEPT_SHIPPED_FILES` most recently shipped.

    ``folder`` must outlive the SparkContext's use of the files (the driver serves them from there):
    the home's cache, not a temporary folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    context = spark.sparkContext
    added = {uri.rsplit("/", 1)[-1] for uri in context.listFiles}
    names = []
    for path in (files.state_dict, files.contract):
        name = f"{file_sha256(path)[:32]}.{path.name}"
        shipped = folder / name
        if not shipped.exists():
            with replaced_on_success(shipped) as partial:
                shutil.copyfile(path, partial)
        os.utime(shipped)  # most recently shipped: kept by the pruning below
        if name not in added:
            context.addFile(str(shipped))
        names.append(name)
    _prune(folder, keep=set(names))
    return ShippedVersion(files.tracking_uri, files.registry_uri, files.model_name, files.version, *names)


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove the shipped files beyond the :data:`KEPT_SHIPPED_FILES` most recently shipped, never ``keep``."""
    shipped = sorted(
        (path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in shipped[KEPT_SHIPPED_FILES:]:
        if path.name not in keep:
            path.unlink(missing_ok=True)
