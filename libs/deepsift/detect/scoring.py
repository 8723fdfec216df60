"""Batched inference: the one place where face crops become probabilities of manipulation.

The Spark scoring UDF and the MLflow pyfunc both call :class:`FaceScorer`, so a model scores the
same crops identically wherever it runs. On a CPU the network runs in channels-last layout (1.6 to
1.9 times the rate of the default layout on EfficientNets), or as an ONNX graph
(:mod:`deepsift.detect.onnx_graph`) when the scan's ``detect.cpu_engine`` asks for it. A scorer made
from a graph that already passed the parity check (:meth:`FaceScorer.from_checked_graph`, a cached
graph) holds no torch network: torch is imported only where a network is, so such a scorer runs without it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from deepsift.config import CpuEngine
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.onnx_graph import PARITY_TOLERANCE, OnnxExportError, OnnxGraph
from deepsift.detect.preprocess import crops_to_array, crops_to_tensor, validate_crops

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

GraphChecked = Callable[[OnnxGraph], None]
"""Told once about an exported graph whose first batch matched torch's scores (it may keep the graph)."""


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FaceScorer:
    """A detector network in eval mode with its preprocessing contract, scoring crops in batches.

    >>> from deepsift.detect.architectures import build_detector_network
    >>> contract = PreprocessContract(architecture="mobilenetv3_small_050", input_size=64)
    >>> scorer = FaceScorer(build_detector_network(contract.architecture), contract, device="cpu")
    >>> scorer.score(np.zeros((3, 64, 64, 3), np.uint8)).shape
    (3,)

    ``on_graph_checked`` is called with the ONNX graph once its first batch has matched torch's
    scores (the version's graph cache keeps it); never when the export fails or parity misses.
    """

    def __init__(
        self,
        network: nn.Module,
        contract: PreprocessContract,
        device: str | torch.device | None = None,
        cpu_engine: CpuEngine = "torch",
        on_graph_checked: GraphChecked | None = None,
    ) -> None:
        import torch

        self.contract = contract
        self._device: torch.device | None = torch.device(device) if device is not None else default_device()
        network = network.to(self._device).eval()
        self._layout = torch.contiguous_format
        self._graph: OnnxGraph | None = None
        self._graph_checked = False
        self._on_graph_checked = on_graph_checked
        if self._device.type == "cpu":
            self._layout = torch.channels_last
            network = network.to(memory_format=self._layout)
            if cpu_engine == "onnxruntime":
                self._graph = self._export(network)
        self.network: nn.Module | None = network
        """The torch network in eval mode; None for a scorer made from a checked graph alone."""

    @classmethod
    def from_checked_graph(cls, graph: OnnxGraph, contract: PreprocessContract) -> FaceScorer:
        """A CPU scorer running ``graph`` alone, without torch: for a graph that passed the parity check
        when it was made (a cached one), so there is nothing to compare it with."""
        scorer = cls.__new__(cls)
        cls._run_checked_graph(scorer, graph, contract)
        return scorer

    def _run_checked_graph(self, graph: OnnxGraph, contract: PreprocessContract) -> None:
        self.contract = contract
        self.network = None
        self._device = None
        self._graph = graph
        self._graph_checked = True
        self._on_graph_checked = None

    @property
    def device(self) -> torch.device:
        """Where the network runs; ``cpu`` for a scorer made from a checked graph."""
        import torch

        return torch.device("cpu") if self._device is None else self._device

    @property
    def engine(self) -> CpuEngine:
        """What runs the forward passes now: ``onnxruntime``, or ``torch`` (always on a GPU)."""
        return "torch" if self._graph is None else "onnxruntime"

    def score(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """P(manipulated) in [0, 1] as float32, one per crop of a (N, S, S, 3) uint8 BGR batch.

        An empty batch gives an empty array; a malformed one raises ``CropFormatError``. On CUDA the
        forward pass runs under bf16 autocast; the sigmoid is taken in float32.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        validate_crops(crops, self.contract)
        scores = np.empty(len(crops), dtype=np.float32)
        with self._inference():
            for start in range(0, len(crops), batch_size):
                batch = crops[start : start + batch_size]
                scores[start : start + len(batch)] = self._probabilities(batch)
        return scores

    def _inference(self) -> contextlib.AbstractContextManager[object]:
        """torch's inference mode (and autocast on CUDA) around the passes; nothing without a network."""
        if self._device is None:
            return contextlib.nullcontext()
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(inference_autocast(self._device))
        return stack

    def _probabilities(self, crops: np.ndarray) -> np.ndarray:
        if self._graph is None:
            return self._torch_probabilities(crops)
        logits = _checked(self._graph.logits(crops_to_array(crops, self.contract)), len(crops))
        probabilities = np.exp(-np.logaddexp(np.float32(0), -logits.reshape(-1)), dtype=np.float32)
        if not self._graph_checked:
            self._graph_checked = True
            reference = self._torch_probabilities(crops)
            difference = float(np.abs(probabilities - reference).max())
            if difference > PARITY_TOLERANCE:
                log.warning(
                    "ONNX Runtime scores differ from torch's by up to %.2g (more than %g) on this model's first "
                    "crops; scoring with torch",
                    difference,
                    PARITY_TOLERANCE,
                )
                self._graph = None
                return reference
            if self._on_graph_checked is not None:
                self._on_graph_checked(self._graph)
        return probabilities

    def _torch_probabilities(self, crops: np.ndarray) -> np.ndarray:
        assert self.network is not None and self._device is not None  # a checked graph never falls back
        batch = crops_to_tensor(crops, self.contract, self._device, self._layout)
        logits = self.network(batch)
        return _checked(logits, len(crops)).float().sigmoid().view(-1).cpu().numpy()

    def _export(self, network: nn.Module) -> OnnxGraph | None:
        import torch

        try:
            return OnnxGraph.export(network, self.contract.input_size, threads=torch.get_num_threads())
        except OnnxExportError as error:
            log.warning("%s; scoring with torch", error)
            return None


Logits = TypeVar("Logits", "torch.Tensor", np.ndarray)


def _checked(logits: Logits, crops: int) -> Logits:
    if tuple(logits.shape) != (crops, 1):
        raise ValueError(f"detector must return one logit per crop, shape ({crops}, 1); got {tuple(logits.shape)}")
    return logits


def inference_autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (the detectors' measured rates assume it), nothing on the CPU."""
    if device.type == "cuda":
        import torch

        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer around it measures the work itself."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
