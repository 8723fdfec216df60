"""``shared_scorer`` keeps one loaded model per device: a task given another GPU never reuses a model
that lives on the wrong one.

The model is a real version in a real MLflow store (SQLite under tmp_path). There is no GPU here, so
torch's ``meta`` device, which needs no hardware, stands in for a second GPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepsift.config import MlflowConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.registry.version_files import shared_scorer


def test_one_model_per_device_each_loaded_once(tmp_path: Path):
    home = tmp_path / "home"
    registry = DetectorRegistry(MlflowConfig(), home)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    torch.manual_seed(3)
    network = build_detector_network(contract.architecture)
    version = registry.log_and_register(network.state_dict(), contract, {"auc": 0.5}, "# untrained test model")
    files = registry.version_files(version.version, tmp_path / "files")

    on_cpu = shared_scorer(files, device="cpu")
    on_other = shared_scorer(files, device="meta")

    assert on_cpu is not on_other
    assert {p.device.type for p in on_cpu.network.parameters()} == {"cpu"}
    assert {p.device.type for p in on_other.network.parameters()} == {"meta"}
    assert shared_scorer(files, device="cpu") is on_cpu
    assert shared_scorer(files, device="meta") is on_other
    expected = network.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in on_cpu.network.state_dict().items())
