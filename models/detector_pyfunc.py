"""MLflow models-from-code entry for deepsift detectors.

MLflow copies this file into every logged detector version and runs it on
``mlflow.pyfunc.load_model``; no Python object is ever pickled. The weights and contract come from
the version's artifacts (``state_dict.pt`` read with ``weights_only=True``, ``contract.json``), and
scoring goes through the same :class:`deepsift.detect.scoring.FaceScorer` the Spark scan uses.

Input: uint8 face crops (N, S, S, 3) in BGR order, S the contract's input size.
Output: float32 P(manipulated), shape (N,).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.models
import numpy as np
from mlflow.pyfunc import PythonModel, PythonModelContext

from deepsift.detect.scoring import FaceScorer
from deepsift.registry.version_files import scorer_from_files


class DetectorModel(PythonModel):
    """Scores face crops with the version's network; built in ``load_context``."""

    scorer: FaceScorer

    def load_context(self, context: PythonModelContext) -> None:
        """Rebuild the network by architecture name and load the weights as plain tensors."""
        state_dict = Path(context.artifacts["state_dict"])
        self.scorer = scorer_from_files(
            state_dict, Path(context.artifacts["contract"]), label=f"model at {state_dict.parent.parent}"
        )

    def predict(
        self, context: PythonModelContext, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """One probability per crop, as float32 (the logged signature checks dtype and shape first)."""
        return self.scorer.score(model_input)


mlflow.models.set_model(DetectorModel())
