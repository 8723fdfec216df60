"""The functions a scan's Python workers unpickle bring in what scoring and labelling need, and not
MLflow (over a second to import; the store is the driver's business), torch, or the stages' Spark and
registry code. They are pickled as PySpark pickles a UDF and loaded in a fresh interpreter, as a worker
loads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pyspark import cloudpickle

from deepsift.config import DetectConfig
from deepsift.detect.devices import detect_udf
from deepsift.registry.version_files import ShippedVersion, shipped_scorer_loader
from deepsift.verdicts.cascade import Cascade
from deepsift.verdicts.labelling import labeller
from deepsift.verdicts.labels import Thresholds

HEAVY = {
    "mlflow", "torch", "timm", "deepsift.registry.mlflow_models", "deepsift.stages.score", "deepsift.stages.verdicts"
}

LOAD_AND_LIST_MODULES = """
import json, pickle, sys
with open(sys.argv[1], "rb") as handle:
    pickle.load(handle)
print(json.dumps(sorted(sys.modules)))
"""


def _modules_loaded_by_unpickling(function: object, tmp_path: Path) -> set[str]:
    payload = tmp_path / "udf.pickle"
    payload.write_bytes(cloudpickle.dumps(function))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_LIST_MODULES, str(payload)], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def test_the_detect_udf_brings_neither_mlflow_nor_torch(tmp_path):
    store = "sqlite:///store.db"
    shipped = ShippedVersion(store, store, "detector", 3, "a.state_dict.pt", "b.contract.json")
    detect = detect_udf(shipped_scorer_loader(shipped, "onnxruntime"), DetectConfig())
    loaded = _modules_loaded_by_unpickling(detect, tmp_path)
    assert "deepsift.registry.version_files" in loaded  # the loader came by reference: the check saw it
    assert not HEAVY & loaded, sorted(HEAVY & loaded)


def test_the_verdict_labeller_brings_neither_mlflow_nor_torch(tmp_path):
    label = labeller("mean", Thresholds(suspicious=0.5, manipulated=0.8), Cascade(first_frames=2, margin=0.1))
    loaded = _modules_loaded_by_unpickling(label, tmp_path)
    assert "deepsift.verdicts.labelling" in loaded
    assert not HEAVY & loaded, sorted(HEAVY & loaded)
