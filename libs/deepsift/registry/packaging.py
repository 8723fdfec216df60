"""A detector version's files: written as a models-from-code pyfunc, read back into a scorer.

The logged model directory holds, beside MLflow's ``MLmodel``:

* ``artifacts/state_dict.pt``: the weights, a plain ``{name: tensor}`` dict, read back with
  ``torch.load(weights_only=True)`` so loading never unpickles arbitrary objects;
* ``artifacts/contract.json``: the :class:`PreprocessContract` (architecture name, input size,
  normalisation, thresholds, ...);
* ``artifacts/model_card.md``: the model card, also the version's description;
* the pyfunc flavour written as *models-from-code* from ``models/detector_pyfunc.py``, so that
  ``mlflow.pyfunc.load_model("models:/deepsift-detector@champion")`` works without pickles.

:func:`scorer_from_files` turns the first two into a :class:`FaceScorer`; the pyfunc and the
registry's :meth:`~deepsift.registry.mlflow_models.DetectorRegistry.load_scorer` share it. Given the
version's :class:`~deepsift.detect.graph_cache.GraphCache` (a CPU scorer on ONNX Runtime), it loads the
cached graph without importing torch or timm, and otherwise caches the graph once it passed parity.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.pyfunc
import numpy as np
from mlflow import MlflowClient
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

import deepsift
from deepsift.config import CpuEngine
from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.detect.graph_cache import GraphCache
from deepsift.detect.onnx_graph import session_threads
from deepsift.registry.checkpoints import load_into_network
from deepsift.registry.errors import (
    CheckpointMismatchError,
    ContractMissingError,
    ModelArtifactError,
    ModelCodeNotFoundError,
    first_line,
)

if TYPE_CHECKING:  # torch, timm and the network code load only where a network is built: not on a scan's driver
    import torch

    from deepsift.detect.scoring import FaceScorer

STATE_DICT_FILE = "state_dict.pt"
MODEL_CARD_FILE = "model_card.md"
PYFUNC_ARTIFACTS_DIR = "artifacts"
"""Where the pyfunc flavour puts the files given as ``artifacts`` inside the model directory."""


def pyfunc_code_path() -> Path:
    """The models-from-code file, ``models/detector_pyfunc.py`` at the repository root.

    The design keeps model code in top-level ``models/``, outside the ``deepsift`` package, so it is
    found relative to the source tree: ``libs/deepsift/__init__.py`` -> repository root. That holds
    for the editable install and for jobs run from a checkout or an image that copies the repository;
    a wheel-only install lacks the file and gets :class:`ModelCodeNotFoundError`. Only logging needs
    it: MLflow copies the file into every logged model, so loading never does.
    """
    path = Path(deepsift.__file__).resolve().parents[2] / "models" / "detector_pyfunc.py"
    if not path.is_file():
        raise ModelCodeNotFoundError(
            f"model code {path} not found; log models from a deepsift checkout (editable install)"
        )
    return path


def log_pyfunc(
    client: MlflowClient,
    model_id: str,
    run_id: str,
    code_path: Path,
    state_dict: dict[str, torch.Tensor],
    contract: PreprocessContract,
    model_card: str,
) -> None:
    """Write one version's pyfunc directory, upload it as logged model ``model_id``'s files, mark it READY."""
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = _save_pyfunc(Path(scratch), code_path, state_dict, contract, model_card, run_id, model_id)
        client.log_model_artifacts(model_id, str(model_dir))
    client.finalize_logged_model(model_id, "READY")


def _save_pyfunc(
    scratch: Path,
    code_path: Path,
    state_dict: dict[str, torch.Tensor],
    contract: PreprocessContract,
    model_card: str,
    run_id: str,
    model_id: str,
) -> Path:
    """Write the models-from-code pyfunc directory for one version under ``scratch``."""
    import torch

    files = scratch / "files"
    files.mkdir()
    torch.save(state_dict, files / STATE_DICT_FILE)
    (files / CONTRACT_FILE).write_text(contract.to_json(), encoding="utf-8")
    (files / MODEL_CARD_FILE).write_text(model_card, encoding="utf-8")
    model_dir = scratch / "model"
    size = contract.input_size
    mlflow.pyfunc.save_model(
        path=str(model_dir),
        python_model=str(code_path),
        artifacts={
            "state_dict": str(files / STATE_DICT_FILE),
            "contract": str(files / CONTRACT_FILE),
            "model_card": str(files / MODEL_CARD_FILE),
        },
        signature=ModelSignature(
            # Unnamed: a named tensor would reach predict() as a {name: array} dict.
            inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size, 3))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
        ),
        input_example=np.zeros((1, size, size, 3), np.uint8),
        pip_requirements=_pip_requirements(),
        mlflow_model=Model(run_id=run_id, model_id=model_id, model_uuid=model_id),
    )
    return model_dir


def contract_params(contract: PreprocessContract) -> dict[str, str]:
    """The contract fields worth comparing runs by in the MLflow UI."""
    return {
        "architecture": contract.architecture,
        "input_size": str(contract.input_size),
        "crop_margin": str(contract.crop_margin),
        "face_detector": contract.face_detector,
    }


def _pip_requirements() -> list[str]:
    """Pinned to what logged the model, so that a served copy rebuilds the same network."""
    import timm
    import torch

    return [
        f"deepsift=={deepsift.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"timm=={timm.__version__}",
        f"numpy=={np.__version__}",
    ]


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
    """Build a :class:`FaceScorer` from a version's two files; the pyfunc and the registry share it.

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
