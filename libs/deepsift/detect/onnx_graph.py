"""The CPU engine: a detector network exported to ONNX and run by ONNX Runtime.

On the 2-core machine ONNX Runtime scores EfficientNet-B0 at 224 px 1.5 to 1.8 times as fast as torch
on one thread (docs/benchmarks.md, "CPU detect path"), its fused kernels and blocked layouts being
built for batch sizes a CPU handles well. The graph is exported from the loaded network (about a
second for EfficientNet-B0, through a scratch file); :class:`deepsift.detect.scoring.FaceScorer` decides
whether to trust it (its scores must match torch's to :data:`PARITY_TOLERANCE`) and falls back to torch
otherwise. A graph that passed is kept per model version (:mod:`deepsift.detect.graph_cache`) and loaded
from its bytes (:class:`OnnxGraph`'s constructor) without torch: this module imports torch only to export.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads only to export: a graph loaded from its bytes runs without it
    from torch import nn

PARITY_TOLERANCE = 1e-3
"""Largest absolute difference of a probability from torch's that the ONNX graph may show."""

INPUT_NAME = "crops"
OUTPUT_NAME = "logits"
EXPORT_OPSET = 20
"""The ONNX opset graphs are exported at (the TorchScript exporter's default in torch 2.15, pinned so that a
cached graph's opset is known without importing torch)."""


class OnnxExportError(RuntimeError):
    """The network could not be exported to ONNX or loaded by ONNX Runtime; the message says why."""


class OnnxGraph:
    """A network's forward pass as an ONNX Runtime session on the CPU.

    >>> from deepsift.detect.architectures import build_detector_network
    >>> graph = OnnxGraph.export(build_detector_network("mobilenetv3_small_050"), input_size=64, threads=1)
    >>> graph.logits(np.zeros((2, 3, 64, 64), np.float32)).shape
    (2, 1)
    """

    def __init__(self, model: bytes, threads: int) -> None:
        import onnxruntime

        self.model = model  # the serialised graph, as exported: what deepsift.detect.graph_cache stores
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its graph-optimisation notes are not a user's concern
        try:
            self._session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own Fail/InvalidGraph types, not exported in a stable place
            raise OnnxExportError(f"ONNX Runtime cannot load the exported graph: {_first_line(error)}") from None

    @classmethod
    def export(cls, network: nn.Module, input_size: int, threads: int) -> OnnxGraph:
        """Export ``network`` (eval mode, on the CPU) for float32 NCHW batches of any size, then load it.

        Raises :class:`OnnxExportError` when the exporter or ONNX Runtime refuses the network.
        """
        import torch

        example = torch.zeros((2, 3, input_size, input_size), dtype=torch.float32)
        try:
            with tempfile.TemporaryDirectory(prefix="deepsift-onnx-") as scratch, warnings.catch_warnings():
                # The TorchScript exporter is deprecated in favour of torch.export's, which takes about six
                # times as long on EfficientNet-B0 and needs onnxscript; its deprecation notes are ours to act
                # on, not a user's. Should it ever be removed, the export fails and scoring stays on torch.
                warnings.simplefilter("ignore", DeprecationWarning)
                path = Path(scratch, "detector.onnx")
                torch.onnx.export(
                    network,
                    (example,),
                    path,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    opset_version=EXPORT_OPSET,
                    dynamo=False,
                )
                model = path.read_bytes()
        except Exception as error:  # the exporter raises many types: unsupported operators, tracing errors, ...
            raise OnnxExportError(f"torch could not export the network to ONNX: {_first_line(error)}") from None
        return cls(model, threads)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The network's output for a contiguous float32 (N, 3, S, S) batch."""
        (output,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(output)


def session_threads() -> int:
    """Threads for a graph run where torch is not loaded, the count torch would use: ``OMP_NUM_THREADS``
    (Spark sets it to ``spark.task.cpus`` in its Python workers), else the cores this process may use."""
    setting = os.environ.get("OMP_NUM_THREADS", "")
    return int(setting) if setting.isdigit() and int(setting) > 0 else len(os.sched_getaffinity(0))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
