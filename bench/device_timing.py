"""Timing one pass of work on a device, shared by the inference benchmarks (``infer.py``, ``gpu_detect.py``).

Kept free of MLflow and Spark so that ``gpu_detect.py`` still runs on a bare GPU host; the scripts run
with this folder first on ``sys.path``, which is how they import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepsift.detect.scoring import synchronize


@dataclass(frozen=True)
class Cost:
    """Wall seconds and core seconds (CPU time of every thread of this process) of one pass."""

    wall_s: float
    core_s: float


def timed(operation: Callable[[], object], device: torch.device) -> Cost:
    """Run ``operation`` once between two device synchronisations, so queued GPU work is counted."""
    synchronize(device)
    wall, core = time.perf_counter(), time.process_time()
    operation()
    synchronize(device)
    return Cost(time.perf_counter() - wall, time.process_time() - core)
