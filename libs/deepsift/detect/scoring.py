"""Batched inference: the one place where face crops become probabilities of manipulation.

The Spark scoring UDF and the MLflow pyfunc both call :class:`FaceScorer`, so a model scores the
same crops identically wherever it runs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from deepsift.detect.contract import PreprocessContract
from deepsift.detect.preprocess import crops_to_tensor, validate_crops


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FaceScorer:
    """A detector network in eval mode with its preprocessing contract, scoring crops in batches.

    >>> from deepsift.detect.architectures import build_detector_network
    >>> contract = PreprocessContract(architecture="mobilenetv3_small_050", input_size=64)
    >>> scorer = FaceScorer(build_detector_network(contract.architecture), contract, device="cpu")
    >>> scorer.score(np.zeros((3, 64, 64, 3), np.uint8)).shape
    (3,)
    """

    def __init__(
        self,
        network: nn.Module,
        contract: PreprocessContract,
        device: str | torch.device | None = None,
    ) -> None:
        self.contract = contract
        self.device = torch.device(device) if device is not None else default_device()
        self.network = network.to(self.device).eval()

    def score(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """P(manipulated) in [0, 1] as float32, one per crop of a (N, S, S, 3) uint8 BGR batch.

        An empty batch gives an empty array; a malformed one raises ``CropFormatError``. On CUDA the
        forward pass runs under bf16 autocast; the sigmoid is taken in float32.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        validate_crops(crops, self.contract)
        scores = np.empty(len(crops), dtype=np.float32)
        with torch.inference_mode(), inference_autocast(self.device):
            for start in range(0, len(crops), batch_size):
                batch = crops_to_tensor(crops[start : start + batch_size], self.contract, self.device)
                logits = self.network(batch)
                if logits.shape != (len(batch), 1):
                    raise ValueError(
                        f"detector must return one logit per crop, shape ({len(batch)}, 1); "
                        f"got {tuple(logits.shape)}"
                    )
                probabilities = logits.float().sigmoid().view(-1)
                scores[start : start + len(batch)] = probabilities.cpu().numpy()
        return scores


def inference_autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (the detectors' measured rates assume it), nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer around it measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
