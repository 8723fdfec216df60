"""The detector lifecycle against a real MLflow store (SQLite + local artifacts in tmp_path)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow.pyfunc
import numpy as np
import pytest
import timm
import torch
from mlflow.exceptions import MlflowException

from deepsift.config import MlflowConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.detect.scoring import FaceScorer
from deepsift.registry.errors import (
    CheckpointError,
    CheckpointMismatchError,
    ContractMissingError,
    ModelArtifactError,
    ModelNotFoundError,
)
from deepsift.registry.mlflow_models import DetectorRegistry, MlflowStore
from deepsift.registry.packaging import PYFUNC_ARTIFACTS_DIR, STATE_DICT_FILE, pyfunc_code_path
from deepsift.registry.promotion import FORCED_PROMOTION_TAG

ARCHITECTURE = "mobilenetv3_small_050"
SIZE = 64
CONTRACT = architecture_spec(ARCHITECTURE).default_contract(input_size=SIZE)


@pytest.fixture
def registry(tmp_path: Path) -> DetectorRegistry:
    return DetectorRegistry(MlflowConfig(), tmp_path / "home")


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(1234)
    return build_detector_network(ARCHITECTURE).eval()


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)


def _register(registry: DetectorRegistry, network: torch.nn.Module, auc: float, eval_set: str | None = "val-1") -> int:
    info = registry.log_and_register(
        network.state_dict(), CONTRACT, {"auc": auc}, "# test detector", run_name=f"auc {auc}", eval_set_id=eval_set
    )
    return info.version


def _stored_file(registry: DetectorRegistry, version: int, filename: str) -> Path:
    root = registry.client.get_model_version_download_uri(registry.name, str(version))
    return Path(url2pathname(urlparse(root).path)) / PYFUNC_ARTIFACTS_DIR / filename


def test_embedded_and_configured_stores(tmp_path: Path) -> None:
    embedded = MlflowStore.from_config(MlflowConfig(), tmp_path)
    assert embedded.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert embedded.registry_uri == embedded.tracking_uri
    assert embedded.artifact_location == (tmp_path.resolve() / "mlflow" / "artifacts").as_uri()
    remote = MlflowStore.from_config(MlflowConfig(tracking_uri="http://mlflow:5000"), tmp_path)
    assert (remote.registry_uri, remote.artifact_location) == ("http://mlflow:5000", None)
    assert pyfunc_code_path().name == "detector_pyfunc.py"


def test_a_version_scores_identically_everywhere(
    registry: DetectorRegistry,
    network: torch.nn.Module,
    crops: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged = registry.log_and_register(
        network.state_dict(), CONTRACT, {"auc": 0.5, "eer": 0.5}, "# random init", run_name="seeded", eval_set_id="val-1"
    )
    assert (logged.version, logged.model_uri, logged.metrics) == (1, "models:/deepsift-detector/1", {"auc": 0.5, "eer": 0.5})
    assert logged.contract == CONTRACT and logged.eval_set_id == "val-1"
    registry.set_alias("challenger", logged.version)
    resolved = registry.resolve("@challenger")
    assert (resolved.version, resolved.aliases, resolved.run_id) == (1, ("challenger",), logged.run_id)

    expected = FaceScorer(network, CONTRACT, device="cpu").score(crops)
    in_process = registry.load_scorer(resolved.version).score(crops)
    np.testing.assert_array_equal(in_process, expected)

    batch_path, scores_path = tmp_path / "crops.npy", tmp_path / "scores.npy"
    np.save(batch_path, crops)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import numpy as np
        from deepsift.config import MlflowConfig
        from deepsift.registry.mlflow_models import DetectorRegistry

        registry = DetectorRegistry(MlflowConfig(), Path(sys.argv[1]))
        scorer = registry.load_scorer(registry.resolve("challenger").version)
        np.save(sys.argv[3], scorer.score(np.load(sys.argv[2])))
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home"), str(batch_path), str(scores_path)],
        check=True,
        timeout=120,
    )
    np.testing.assert_array_equal(np.load(scores_path), expected)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.store.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.store.registry_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/deepsift-detector@challenger")
    predicted = pyfunc.predict(crops)
    assert predicted.dtype == np.float32
    np.testing.assert_array_equal(predicted, expected)
    with pytest.raises(MlflowException, match=r"(?s)^Failed to enforce schema.*(uint8|dtype)"):
        pyfunc.predict(crops.astype(np.float32))


def test_resolve_accepts_every_spelling_and_names_what_is_missing(
    registry: DetectorRegistry, network: torch.nn.Module
) -> None:
    with pytest.raises(ModelNotFoundError, match="no alias @champion; aliases: none"):
        registry.resolve("champion")
    version = _register(registry, network, 0.7)
    registry.set_alias("@challenger", version)
    for reference in ("@challenger", "challenger", "1", 1):
        assert registry.resolve(reference).version == version
    with pytest.raises(ModelNotFoundError, match="deepsift-detector has no alias @champion; aliases: @challenger"):
        registry.resolve("@champion")
    with pytest.raises(ModelNotFoundError, match="no version 7; versions: 1"):
        registry.resolve("7")
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        registry.set_alias("champion", 9)
    with pytest.raises(ModelNotFoundError, match="no version 9; versions: 1"):
        registry.load_scorer(9)
    with pytest.raises(TypeError, match="exact version number"):
        registry.load_scorer("challenger")  # type: ignore[arg-type]
    assert [v.version for v in registry.list_versions()] == [1]


def test_promotion_compares_on_the_same_evaluation_set(registry: DetectorRegistry, network: torch.nn.Module) -> None:
    first, worse, better, elsewhere = (
        _register(registry, network, auc, eval_set)
        for auc, eval_set in ((0.90, "val-1"), (0.80, "val-1"), (0.95, "val-1"), (0.99, "val-2"))
    )
    registry.set_alias("challenger", first)
    decision = registry.promote()
    assert decision.promoted and decision.champion_version is None
    assert registry.resolve("champion").version == first

    registry.set_alias("challenger", worse)
    decision = registry.promote()
    assert not decision.promoted and not decision.forced
    assert "0.8000" in decision.reason and "0.9000" in decision.reason
    assert (decision.challenger_value, decision.champion_value) == (0.80, 0.90)
    assert registry.resolve("champion").version == first

    decision = registry.promote(force=True)
    assert decision.promoted and decision.forced
    assert registry.resolve("champion").version == worse
    tags = registry.client.get_model_version(registry.name, str(worse)).tags
    assert tags[FORCED_PROMOTION_TAG] == "true"

    registry.set_alias("challenger", better)
    decision = registry.promote()
    assert decision.promoted and not decision.forced and decision.champion_version == worse
    assert FORCED_PROMOTION_TAG not in registry.client.get_model_version(registry.name, str(better)).tags

    registry.set_alias("challenger", elsewhere)
    decision = registry.promote()
    assert not decision.promoted and "different sets (val-2 vs val-1)" in decision.reason
    assert registry.resolve("@champion").version == better
    assert registry.resolve("@champion").aliases == ("champion",)


def test_import_checkpoint_unwraps_and_checks_shapes(
    registry: DetectorRegistry, network: torch.nn.Module, crops: np.ndarray, tmp_path: Path
) -> None:
    contract = PreprocessContract(architecture=ARCHITECTURE, input_size=SIZE)
    two_class = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=2).state_dict()
    mismatched = tmp_path / "two_class.pth"
    torch.save({"state_dict": two_class}, mismatched)
    with pytest.raises(CheckpointMismatchError) as caught:
        registry.import_checkpoint(mismatched, ARCHITECTURE, contract, "# wrong head")
    assert "'classifier.weight': checkpoint shape (2, 1024), architecture expects (1, 1024)" in str(caught.value)

    truncated = dict(network.state_dict())
    del truncated["conv_stem.weight"]
    torch.save(truncated, tmp_path / "truncated.pt")
    with pytest.raises(CheckpointMismatchError, match=r"missing key 'conv_stem\.weight'"):
        registry.import_checkpoint(tmp_path / "truncated.pt", ARCHITECTURE, contract, "# truncated")

    torch.save({"state_dict": network.state_dict(), "args": argparse.Namespace(lr=0.1)}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*pickled\.pt as plain tensors"):
        registry.import_checkpoint(tmp_path / "pickled.pt", ARCHITECTURE, contract, "# has a Namespace")
    assert registry.list_versions() == []

    wrapped = {"model": {f"module.{key}": value for key, value in network.state_dict().items()}, "epoch": 7}
    torch.save(wrapped, tmp_path / "dataparallel.pth")
    imported = registry.import_checkpoint(tmp_path / "dataparallel.pth", ARCHITECTURE, contract, "# imported")
    assert imported.version == 1 and imported.metrics == {}
    expected = FaceScorer(network, CONTRACT, device="cpu").score(crops)
    np.testing.assert_array_equal(registry.load_scorer(imported.version).score(crops), expected)
    params = registry.client.get_run(imported.run_id).data.params
    assert params["checkpoint_file"] == "dataparallel.pth" and len(params["checkpoint_sha256"]) == 64


def test_log_and_register_refuses_weights_of_another_architecture(registry: DetectorRegistry) -> None:
    other = build_detector_network("efficientnet_b0").state_dict()
    with pytest.raises(CheckpointMismatchError, match="does not fit mobilenetv3_small_050"):
        registry.log_and_register(other, CONTRACT, {"auc": 0.5}, "# wrong weights")
    assert registry.list_versions() == []


def test_damaged_artifacts_raise_typed_errors(registry: DetectorRegistry, network: torch.nn.Module) -> None:
    version = _register(registry, network, 0.6)
    _stored_file(registry, version, STATE_DICT_FILE).write_bytes(b"\x00garbage, not a zip or pickle\xff" * 10)
    with pytest.raises(ModelArtifactError) as caught:
        registry.load_scorer(version)
    message = str(caught.value)
    assert "deepsift-detector version 1" in message and "state_dict.pt is not a readable" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    _stored_file(registry, version, STATE_DICT_FILE).unlink()
    with pytest.raises(ModelArtifactError, match=r"version 1: cannot fetch state_dict\.pt"):
        registry.load_scorer(version)

    _stored_file(registry, version, CONTRACT_FILE).unlink()
    with pytest.raises(ContractMissingError, match=r"version 1: cannot fetch contract\.json"):
        registry.load_contract(version)


def test_a_versions_contract_is_read_once_per_process(registry: DetectorRegistry, network: torch.nn.Module) -> None:
    version = _register(registry, network, 0.6)  # registering resolves the new version: its contract is read
    _stored_file(registry, version, CONTRACT_FILE).unlink()
    assert registry.resolve(version).contract == CONTRACT
    assert [info.contract for info in registry.list_versions()] == [CONTRACT]
    with pytest.raises(ContractMissingError, match=r"version 1: cannot fetch contract\.json"):
        registry.load_contract(version)
