"""Registering a tiny untrained detector, for tests that need a ``@champion`` but not a trained one."""

from __future__ import annotations

import torch

from deepsift.config import Config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo


def register_untrained_champion(config: Config, seed: int) -> ModelVersionInfo:
    """Register an untrained ``mobilenetv3_small_050`` (64 px crops, 8 frames a video) in ``config``'s
    MLflow store and point ``@champion`` at it; ``seed`` fixes its weights, hence its scores."""
    torch.manual_seed(seed)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64, frames_per_video=8)
    registry = DetectorRegistry(config.mlflow, config.home)
    version = registry.log_and_register(
        build_detector_network(contract.architecture).state_dict(), contract, {"auc": 0.5}, "# untrained test model"
    )
    registry.set_alias("champion", version.version)
    return version
