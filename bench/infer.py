"""Benchmark: what do packaging and preprocessing cost a detector's throughput, in faces per second?

For each architecture a randomly initialised detector is logged and registered as a version in a
throwaway embedded MLflow store (a temporary folder) through :class:`DetectorRegistry`, then the same
batches of uint8 face crops are scored three ways:

* bare: the timm network in eval mode under ``torch.inference_mode``, fed tensors that are already
  normalised float32 (preprocessing excluded) and already on the device;
* scorer: ``DetectorRegistry.load_scorer(version).score(crops)``, the path the Spark UDF takes,
  uint8 BGR crops in host memory to probabilities (conversion, normalisation, transfer included);
* pyfunc: ``mlflow.pyfunc.load_model("models:/<name>/<version>").predict(crops)``, which adds
  MLflow's input-schema check and then scores in batches of 64 (``FaceScorer.score``'s default).

Overhead is the share of bare throughput lost; the target is under 10 %. A second table gives the
CPU time per face of each mode, which other jobs on a shared machine disturb far less than wall time.
Each cell is the median of ``--repeats`` timed passes, the modes interleaved so that drifting load
hits them alike, after a warm-up. On CUDA all three run under bf16 autocast, as ``FaceScorer`` does.
Prints markdown tables and writes them into ``docs/benchmarks.md`` under "## Detector inference (bench/infer.py)", in a
subsection named after the machine (other sections and machines are left alone).

    python bench/infer.py [--device cpu] [--threads 1 2] [--machine "2-core dev machine, CPU"]
    python bench/infer.py --device cuda [--arch efficientnet_b0 efficientnet_b4] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import mlflow.pyfunc
import numpy as np
import torch
from torch import nn

from deepsift.config import MlflowConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.preprocess import crops_to_tensor
from deepsift.detect.scoring import inference_autocast, synchronize
from deepsift.registry.mlflow_models import DetectorRegistry
from device_timing import Cost, timed

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
HEADING = "## Detector inference (bench/infer.py)"
DOCS_INTRO = "# Benchmarks\n\nMeasured costs of deepsift's stages; each section names the script that produced it.\n"
DEFAULT_ARCHS = {"cpu": ["mobilenetv3_small_050", "efficientnet_b0"], "cuda": ["efficientnet_b0"]}
DEFAULT_BATCH = {"cpu": 32, "cuda": 256}
DEFAULT_TARGET_S = {"cpu": 1.5, "cuda": 2.0}
DISTINCT_BATCHES = 8
"""Timed passes cycle through at most this many distinct batches, which bounds memory on a GPU."""
WARMUP_PASSES = {"cpu": 1, "cuda": 3}
MODES = ("bare", "scorer", "pyfunc")


@dataclass(frozen=True)
class Row:
    """One architecture on one device setting: the cost of a pass over the same faces in each mode."""

    arch: str
    input_size: int
    setting: str
    batch_size: int
    faces: int
    costs: dict[str, Cost]

    def throughput(self) -> str:
        """Faces per second by wall clock, and the share of bare throughput each packaged mode loses."""
        return self._markdown({mode: self.faces / cost.wall_s for mode, cost in self.costs.items()}, "{:,.0f}", True)

    def core_time(self) -> str:
        """Core-milliseconds per face, and the share of each packaged mode's core time bare does not need.

        CPU time is barely touched by other jobs on a shared machine, unlike wall time.
        """
        return self._markdown(
            {mode: 1000.0 * cost.core_s / self.faces for mode, cost in self.costs.items()}, "{:,.2f}", False
        )

    def _markdown(self, values: dict[str, float], number: str, higher_is_better: bool) -> str:
        bare = values["bare"]
        cells = [number.format(bare)]
        for mode in MODES[1:]:
            lost = 1.0 - (values[mode] / bare if higher_is_better else bare / values[mode])
            cells.append(f"{number.format(values[mode])} ({100.0 * lost:.1f}%)")
        return f"| {self.arch} | {self.input_size} | {self.setting} | {self.batch_size} | {self.faces} | " + (
            " | ".join(cells) + " |"
        )


ROW_HEADER = "| architecture | input px | device | batch | faces per pass "
THROUGHPUT_HEADER = [
    ROW_HEADER + "| bare faces/s | scorer faces/s (overhead) | pyfunc faces/s (overhead) |",
    "|---|---|---|---|---|---|---|---|",
]
CORE_TIME_HEADER = [
    ROW_HEADER + "| bare core-ms/face | scorer core-ms/face (overhead) | pyfunc core-ms/face (overhead) |",
    "|---|---|---|---|---|---|---|---|",
]


def realistic_crops(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Image-like uint8 BGR crops: smooth random shapes (upscaled 6x6 colour fields) plus sensor noise."""
    crops = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        coarse = rng.uniform(30, 225, (6, 6, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        crops[i] = np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    return crops


def bare_pass(network: nn.Module, tensors: list[torch.Tensor], order: list[int], device: torch.device) -> None:
    with torch.inference_mode(), inference_autocast(device):
        for index in order:
            network(tensors[index])
    synchronize(device)


def measure(
    network: nn.Module,
    contract: PreprocessContract,
    registry: DetectorRegistry,
    version: int,
    model_uri: str,
    device: torch.device,
    setting: str,
    args: argparse.Namespace,
) -> Row:
    """Time the three modes on the same batches; the number of batches is sized from a bare warm-up."""
    bare = network.to(device).eval()
    scorer = registry.load_scorer(version, device=device)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    rng = np.random.default_rng(0)
    pool = [realistic_crops(args.batch_size, contract.input_size, rng) for _ in range(DISTINCT_BATCHES)]
    tensors = [crops_to_tensor(crops, contract, device) for crops in pool]
    for _ in range(WARMUP_PASSES[device.type]):
        bare_pass(bare, tensors, [0], device)
        scorer.score(pool[0], batch_size=args.batch_size)
        pyfunc.predict(pool[0])
    per_batch = timed(lambda: bare_pass(bare, tensors, [1], device), device).wall_s
    n_batches = max(1, math.ceil(args.target_s / per_batch))
    order = [i % DISTINCT_BATCHES for i in range(n_batches)]
    passes: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_pass(bare, tensors, order, device),
        "scorer": lambda: [scorer.score(pool[i], batch_size=args.batch_size) for i in order],
        "pyfunc": lambda: [pyfunc.predict(pool[i]) for i in order],
    }
    timings: dict[str, list[Cost]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            timings[mode].append(timed(passes[mode], device))
    medians = {
        mode: Cost(statistics.median(c.wall_s for c in costs), statistics.median(c.core_s for c in costs))
        for mode, costs in timings.items()
    }
    faces = n_batches * args.batch_size
    return Row(contract.architecture, contract.input_size, setting, args.batch_size, faces, medians)


def run(args: argparse.Namespace) -> tuple[list[str], str]:
    """Register each architecture in a throwaway store and measure it on every device setting.

    Returns both tables' lines (faces/s, core-ms per face) and the machine's 1-minute load average
    before and after, since other jobs on a shared machine slow every mode (multi-threaded ones most).
    """
    load_before = os.getloadavg()[0]
    device = torch.device(args.device)
    settings: list[tuple[str, int | None]] = (
        [(f"CPU, {n} thread{'s' if n > 1 else ''}", n) for n in args.threads]
        if device.type == "cpu"
        else [(f"{torch.cuda.get_device_name(device)}, bf16", None)]
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="deepsift-bench-infer-") as tmp:
        registry = DetectorRegistry(MlflowConfig(), Path(tmp) / "home", experiment_name="bench-infer")
        # models:/ URIs resolve through the process-wide registry; this script's process is its own.
        os.environ["MLFLOW_TRACKING_URI"] = registry.store.tracking_uri
        os.environ["MLFLOW_REGISTRY_URI"] = registry.store.registry_uri
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        for arch in args.arch:
            contract = architecture_spec(arch).default_contract()
            torch.manual_seed(0)
            network = build_detector_network(arch)
            info = registry.log_and_register(
                network.state_dict(), contract, {}, f"# {arch}, random weights (benchmark)"
            )
            for setting, threads in settings:
                if threads is not None:
                    torch.set_num_threads(threads)
                rows.append(measure(network, contract, registry, info.version, info.model_uri, device, setting, args))
                print(rows[-1].throughput(), flush=True)
    tables = [*THROUGHPUT_HEADER, *(row.throughput() for row in rows), ""]
    tables += [*CORE_TIME_HEADER, *(row.core_time() for row in rows)]
    return tables, f"1-minute load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after"


def notes(args: argparse.Namespace, load: str) -> str:
    """What the table measured, for the docs."""
    common = (
        f"{load}. Median of {args.repeats} timed passes per cell over the same batches of image-like random uint8 "
        "crops (weights random: throughput does not depend on them). Bare: the timm network on "
        "normalised float32 input already prepared, preprocessing excluded. Scorer: "
        "`DetectorRegistry.load_scorer(version).score(uint8 crops)`, the Spark UDF's path. Pyfunc: "
        "`mlflow.pyfunc.load_model(models:/...).predict(uint8 crops)`. Overhead: throughput lost against bare "
        "(target: under 10 %). Core-ms per face: CPU time of every thread of the process (host time on a GPU), "
        "which other jobs on a shared machine change far less than wall time; its overhead is the share of a "
        "mode's core time that bare does not need."
    )
    if args.device == "cuda":
        return common + (
            " All modes run under bf16 autocast. Bare input is already on the GPU; scorer and pyfunc get uint8 "
            "crops in host memory, so their cost includes the host-to-device copy and normalisation. Pyfunc "
            "scores in batches of 64 (`FaceScorer.score`'s default), whatever the batch passed to it."
        )
    return common + " `torch.set_num_threads` sets the threads per row."


def write_docs(tables: list[str], args: argparse.Namespace, load: str) -> None:
    """Replace (or add) this machine's subsection of this benchmark's section; other text is kept."""
    today = datetime.date.today().isoformat()
    subsection = [f"### {args.machine}", "", f"{args.machine}, {today}. {notes(args, load)}", "", *tables]
    lines = DOCS_FILE.read_text(encoding="utf-8").splitlines() if DOCS_FILE.exists() else DOCS_INTRO.splitlines()
    if HEADING not in lines:
        lines = [*_trimmed(lines), "", HEADING]
    start = lines.index(HEADING)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    if subsection[0] in section:
        sub_start = section.index(subsection[0])
        sub_end = next(
            (i for i in range(sub_start + 1, len(section)) if section[i].startswith("### ")), len(section)
        )
        section = section[:sub_start] + subsection + [""] + section[sub_end:]
    else:
        section = [*_trimmed(section), "", *subsection]
    lines = lines[:start] + _trimmed(section) + [""] + lines[end:]
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text("\n".join(_trimmed(lines)) + "\n", encoding="utf-8")


def _trimmed(lines: list[str]) -> list[str]:
    """``lines`` without trailing blank lines."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--arch", nargs="+", help="default: mobilenetv3_small_050 and efficientnet_b0 on CPU, "
                        "efficientnet_b0 on CUDA")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU only: torch threads per row")
    parser.add_argument("--batch-size", type=int, help="crops per batch (default 32 on CPU, 256 on CUDA)")
    parser.add_argument("--target-s", type=float, help="seconds of bare inference per timed pass "
                        "(default 1.5 on CPU, 2 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--machine", help="machine description for the docs (default: core count or GPU name)")
    parser.add_argument("--no-docs", action="store_true", help="print the table only")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    args.arch = args.arch or DEFAULT_ARCHS[args.device]
    args.batch_size = args.batch_size or DEFAULT_BATCH[args.device]
    args.target_s = args.target_s or DEFAULT_TARGET_S[args.device]
    if args.machine is None:
        args.machine = (
            f"{os.cpu_count()}-core machine, CPU" if args.device == "cpu" else f"one {torch.cuda.get_device_name(0)}"
        )
    tables, load = run(args)
    print()
    print("\n".join(tables))
    print()
    print(notes(args, load))
    if not args.no_docs:
        write_docs(tables, args, load)
        print(f"\nwritten to {DOCS_FILE.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
