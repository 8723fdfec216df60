"""Benchmark: the scan's CPU detect path against the bare network on the same cores, in faces per second.

The detect stage on ``local[2]`` runs two Spark Python workers, one task each, with one torch thread
each (Spark sets ``OMP_NUM_THREADS`` to ``spark.task.cpus``). Each task gets JPEG crops from the
``faces`` table and runs :func:`deepsift.detect.arrow_scoring.score_crop_batches` on a
:class:`~deepsift.detect.scoring.FaceScorer`. This script times exactly that body, in two processes
with one thread each, started together on the same crops, for:

* ``before``: the path as it was (torch, default memory layout, 256 crops per forward pass);
* ``torch``: torch in channels-last layout at ``detect.cpu_batch_size`` (``detect.cpu_engine: torch``);
* ``onnxruntime``: the default engine at ``detect.cpu_batch_size``.

and the bare network, in one process with torch on every core, crops already decoded and normalised:

* ``bare, as the issue measured it``: default layout, 32 crops a pass;
* ``bare, best``: the fastest of channels-last torch at 4, 8, 16 and 32 crops a pass;
* ``bare, ONNX Runtime``: the exported graph alone on every core, the fastest of 4, 8 and 16 a pass.

The profile splits one ``onnxruntime`` and one ``torch`` process's time into JPEG decoding,
preprocessing (uint8 BGR to normalised float) and the network. Each cell is the median of
``--repeats`` timings after a warm-up; faces come from image-like random crops (throughput does not
depend on pixels or weights; the parity on real crops is tested in tests/unit/test_onnx_engine.py).

    python bench/cpu_detect.py [--arch efficientnet_b0] [--input-size 224] [--faces 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import torch

from deepsift.config import CpuEngine, DetectConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.arrow_scoring import score_crop_batches
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.onnx_graph import OnnxGraph
from deepsift.detect.preprocess import crops_to_tensor
from deepsift.detect.scoring import FaceScorer
from deepsift.faces.crops import decode_crop, encode_crop
from infer import realistic_crops

JPEG_QUALITY = 95
"""The ``faces.jpeg_quality`` default: what the ``faces`` table holds."""
WORKERS = 2
BEFORE_BATCH = 256
"""Crops per forward pass before ``detect.cpu_batch_size`` existed (one batch size for every device)."""


def crop_batch(contract: PreprocessContract, faces: int) -> pa.RecordBatch:
    """``faces`` JPEG crops with their keys, as the detect UDF receives them from ``faces``."""
    crops = realistic_crops(faces, contract.input_size, np.random.default_rng(0))
    return pa.RecordBatch.from_pydict({
        "video_id": ["bench"] * faces,
        "frame_index": pa.array(range(faces), pa.int32()),
        "face_index": pa.array([0] * faces, pa.int32()),
        "crop": [encode_crop(crop, "jpeg", JPEG_QUALITY) for crop in crops],
    })


def scorer_for(contract: PreprocessContract, engine: str) -> FaceScorer:
    torch.manual_seed(0)
    network = build_detector_network(contract.architecture)
    if engine == "before":
        scorer = FaceScorer(network, contract, "cpu", cpu_engine="torch")
        scorer.network.to(memory_format=torch.contiguous_format)
        scorer._layout = torch.contiguous_format  # noqa: SLF001 - recreates the layout this change replaced
        return scorer
    cpu_engine: CpuEngine = "onnxruntime" if engine == "onnxruntime" else "torch"
    return FaceScorer(network, contract, "cpu", cpu_engine=cpu_engine)


def _worker(contract_json: str, engine: str, batch_size: int, faces: int, repeats: int, barrier, results) -> None:
    """One detect task's process: one torch thread, the UDF body over the same crops, timed per repeat."""
    torch.set_num_threads(1)
    contract = PreprocessContract.model_validate_json(contract_json)
    scorer = scorer_for(contract, engine)
    batch = crop_batch(contract, faces)

    def score() -> None:
        for _ in score_crop_batches(iter([batch]), lambda: scorer, batch_size):
            pass

    score()  # warm-up (and, for onnxruntime, the parity check on the first batch)
    spans = []
    for _ in range(repeats):
        barrier.wait()
        started = time.time()
        score()
        spans.append((started, time.time()))
    results.put((scorer.engine, spans))


def detect_path(contract: PreprocessContract, engine: str, batch_size: int, faces: int, repeats: int) -> float:
    """Faces per second of two one-thread processes scoring ``faces`` crops each, started together."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [
        context.Process(
            target=_worker, args=(contract.model_dump_json(), engine, batch_size, faces, repeats, barrier, results)
        )
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    engines = {ran for ran, _ in outcomes}
    if engine != "before" and engines != {engine}:
        raise RuntimeError(f"asked for {engine}, the processes ran {sorted(engines)}")
    walls = [
        max(spans[i][1] for _, spans in outcomes) - min(spans[i][0] for _, spans in outcomes) for i in range(repeats)
    ]
    return WORKERS * faces / statistics.median(walls)


def median_rate(operation: Callable[[], object], faces: int, repeats: int) -> float:
    operation()
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        walls.append(time.perf_counter() - started)
    return faces / statistics.median(walls)


def bare(contract: PreprocessContract, faces: int, repeats: int) -> dict[str, tuple[float, str]]:
    """The network alone on every core: the issue's setting, and the best layout and batch size."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    network = build_detector_network(contract.architecture).eval()
    tensor = crops_to_tensor(realistic_crops(faces, contract.input_size, np.random.default_rng(0)), contract)

    def passes(net: torch.nn.Module, batch: torch.Tensor, size: int) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for start in range(0, faces, size):
                    net(batch[start : start + size])

        return run

    rates = {"bare, as the issue measured it (default layout, 32 a pass)": (median_rate(passes(network, tensor, 32), faces, repeats), "")}
    channels_last = network.to(memory_format=torch.channels_last)
    tensor_cl = tensor.contiguous(memory_format=torch.channels_last)
    best = max(
        (median_rate(passes(channels_last, tensor_cl, size), faces, repeats), size) for size in (4, 8, 16, 32)
    )
    rates["bare, best (channels-last torch)"] = (best[0], f"{best[1]} a pass")
    graph = OnnxGraph.export(network, contract.input_size, threads=torch.get_num_threads())
    array = tensor.numpy()
    onnx_best = max(
        (median_rate(lambda size=size: [graph.logits(array[s : s + size]) for s in range(0, faces, size)], faces, repeats), size)
        for size in (4, 8, 16)
    )
    rates["bare, ONNX Runtime on every core"] = (onnx_best[0], f"{onnx_best[1]} a pass")
    return rates


def profile(contract: PreprocessContract, engine: str, batch_size: int, faces: int) -> dict[str, float]:
    """Milliseconds per face of one one-thread process: JPEG decoding, preprocessing, the network."""
    torch.set_num_threads(1)
    scorer = scorer_for(contract, engine)
    jpegs = crop_batch(contract, faces).column("crop").to_pylist()
    decoded = np.stack([decode_crop(jpeg) for jpeg in jpegs])
    scorer.score(decoded[:batch_size], batch_size)  # warm-up and parity check
    started = time.perf_counter()
    for jpeg in jpegs:
        decode_crop(jpeg)
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, faces, batch_size):
        crops_to_tensor(decoded[start : start + batch_size], contract, "cpu", scorer._layout)  # noqa: SLF001
    preprocess_s = time.perf_counter() - started
    started = time.perf_counter()
    scorer.score(decoded, batch_size)
    score_s = time.perf_counter() - started
    return {
        "decode JPEG": 1000 * decode_s / faces,
        "preprocess": 1000 * preprocess_s / faces,
        "network": 1000 * max(0.0, score_s - preprocess_s) / faces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="efficientnet_b0")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--faces", type=int, default=192, help="crops each process scores per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    contract = architecture_spec(args.arch).default_contract(input_size=args.input_size)
    batch = DetectConfig().cpu_batch_size
    load = os.getloadavg()[0]
    rows = bare(contract, WORKERS * args.faces, args.repeats)
    reference = rows["bare, as the issue measured it (default layout, 32 a pass)"][0]
    best = rows["bare, best (channels-last torch)"][0]
    paths = {
        f"detect path before (torch, default layout, {BEFORE_BATCH} a pass)": ("before", BEFORE_BATCH),
        f"detect path, cpu_engine torch (channels-last, {batch} a pass)": ("torch", batch),
        f"detect path, cpu_engine onnxruntime ({batch} a pass)": ("onnxruntime", batch),
    }
    for label, (engine, size) in paths.items():
        rows[label] = (detect_path(contract, engine, size, args.faces, args.repeats), "")
    print(f"{args.arch} at {args.input_size} px, {len(os.sched_getaffinity(0))} cores, load {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; median of {args.repeats}\n")
    onnx_bare = rows["bare, ONNX Runtime on every core"][0]
    print("| mode | faces/s | of bare as measured in the issue | of best bare torch | of bare ONNX Runtime |")
    print("|---|---|---|---|---|")
    for label, (rate, note) in rows.items():
        print(
            f"| {label}{' ' + note if note else ''} | {rate:.1f} | {rate / reference:.0%} | {rate / best:.0%} "
            f"| {rate / onnx_bare:.0%} |"
        )
    print("\n| one process, one thread | decode JPEG ms/face | preprocess ms/face | network ms/face |")
    print("|---|---|---|---|")
    for engine in ("torch", "onnxruntime"):
        parts = profile(contract, engine, batch, args.faces)
        print(f"| {engine}, {batch} a pass | " + " | ".join(f"{value:.2f}" for value in parts.values()) + " |")


if __name__ == "__main__":
    main()
