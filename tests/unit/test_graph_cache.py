"""The ONNX graph cache: a version's graph is exported and checked once, a later load (another worker,
another run) scores from the cache without importing torch or timm, and a damaged cache file is
exported again, saying so once."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsift.config import load_config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.graph_cache import graph_cache_dir
from deepsift.registry.mlflow_models import DetectorRegistry

SECOND_LOAD = """
import json, sys
import numpy as np
from deepsift.config import load_config
from deepsift.registry.mlflow_models import DetectorRegistry

config = load_config(environ={}, overrides={"home": sys.argv[1]})
scorer = DetectorRegistry(config.mlflow, config.home).load_scorer(int(sys.argv[2]), "cpu", "onnxruntime")
scores = scorer.score(np.load(sys.argv[3]), batch_size=8)
print(json.dumps({
    "engine": scorer.engine,
    "scores": scores.tolist(),
    "imported": sorted(name for name in ("torch", "timm", "torchvision") if name in sys.modules),
}))
"""


@pytest.fixture
def version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DetectorRegistry, int]:
    """A tiny untrained version in a fresh store, with this test's own graph cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = load_config(environ={}, overrides={"home": str(tmp_path / "home")})
    registry = DetectorRegistry(config.mlflow, config.home)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    torch.manual_seed(0)
    network = build_detector_network(contract.architecture)
    return registry, registry.log_and_register(network.state_dict(), contract, {}, "# graph cache").version


@pytest.fixture
def crops() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)


def test_a_second_load_scores_from_the_cached_graph_without_torch(version, crops, tmp_path) -> None:
    registry, number = version
    assert not graph_cache_dir().exists()
    first = registry.load_scorer(number, "cpu", "onnxruntime")
    assert first.network is not None  # exported here, from the network
    expected = first.score(crops, batch_size=8)
    assert first.engine == "onnxruntime"
    (cached,) = graph_cache_dir().glob("*.onnx")  # kept once the first batch matched torch's scores
    assert cached.name.startswith(f"deepsift-detector-v{number}-")

    np.save(crops_file := tmp_path / "crops.npy", crops)
    home = str(tmp_path / "home")
    second = subprocess.run(
        [sys.executable, "-c", SECOND_LOAD, home, str(number), str(crops_file)],
        capture_output=True, text=True, check=True, timeout=600,
    )
    loaded = json.loads(second.stdout.splitlines()[-1])
    assert loaded["imported"] == []
    assert loaded["engine"] == "onnxruntime"
    np.testing.assert_allclose(loaded["scores"], expected, rtol=0, atol=1e-6)
    assert list(graph_cache_dir().glob("*.onnx")) == [cached]


@pytest.mark.parametrize("damage", ["truncated", "bit_flipped"])
def test_a_damaged_cache_file_is_exported_again_saying_so_once(version, crops, caplog, damage) -> None:
    registry, number = version
    registry.load_scorer(number, "cpu", "onnxruntime").score(crops, batch_size=8)
    (cached,) = graph_cache_dir().glob("*.onnx")
    whole = cached.read_bytes()
    if damage == "truncated":
        cached.write_bytes(whole[: len(whole) // 2])
    else:
        cached.write_bytes(whole[:-100] + bytes([whole[-100] ^ 0x01]) + whole[-99:])
    damaged = cached.read_bytes()

    with caplog.at_level(logging.WARNING, logger="deepsift.detect.graph_cache"):
        scorer = registry.load_scorer(number, "cpu", "onnxruntime")
    assert scorer.network is not None  # exported again, not loaded from the damaged file
    scorer.score(crops, batch_size=8)
    assert scorer.engine == "onnxruntime"
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "is damaged" in warnings[0] and "exporting it again" in warnings[0]
    assert cached.read_bytes() != damaged  # the checked graph replaced the damaged file

    assert registry.load_scorer(number, "cpu", "onnxruntime").network is None  # and is used from then on


def test_other_devices_and_engines_leave_the_cache_alone(version, crops) -> None:
    registry, number = version
    registry.load_scorer(number, "cpu", "torch").score(crops)
    registry.load_scorer(number, None, "onnxruntime").score(crops)
    assert not graph_cache_dir().exists()
