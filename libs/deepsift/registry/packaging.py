"""A detector version's files, written as a models-from-code pyfunc.

The logged model directory holds, beside MLflow's ``MLmodel``:

* ``artifacts/state_dict.pt``: the weights, a plain ``{name: tensor}`` dict, read back with
  ``torch.load(weights_only=True)`` so loading never unpickles arbitrary objects;
* ``artifacts/contract.json``: the :class:`PreprocessContract` (architecture name, input size,
  normalisation, thresholds, ...);
* ``artifacts/model_card.md``: the model card, also the version's description;
* the pyfunc flavour written as *models-from-code* from ``models/detector_pyfunc.py``, so that
  ``mlflow.pyfunc.load_model("models:/deepsift-detector@champion")`` works without pickles.

:func:`~deepsift.registry.version_files.scorer_from_files` turns the first two back into a
:class:`FaceScorer`, without MLflow. The pyfunc code logged with every version imports it from this
module, so it stays importable from here for the versions logged before it moved.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.pyfunc
import numpy as np
from mlflow import MlflowClient
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

import deepsift
from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.registry.errors import ModelCodeNotFoundError
from deepsift.registry.version_files import STATE_DICT_FILE
from deepsift.registry.version_files import scorer_from_files as scorer_from_files  # see the module docstring

if TYPE_CHECKING:  # torch and timm load only where a network is built: not on a scan's driver
    import torch

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
