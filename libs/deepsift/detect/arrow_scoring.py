"""Arrow batches of face crops in, Arrow batches of scores out: the body of the scan's detect UDF.

Free of Spark on purpose, so the exact function the executors run can also be fed directly (the GPU
benchmark does, on hosts without Java or pyspark). Crops are decoded and scored ``batch_size`` at a
time whatever size Arrow hands them over in. On a GPU, decoding the JPEG crops on the task's one
thread would starve the device (one thread decodes about 2,500 crops/s, a fifth of what
EfficientNet-B0 scores on an H100), so there the crops of the next batches are decoded on a thread
pool while the current batch is scored: OpenCV releases the GIL while it decodes, and each thread
writes its crops straight into a reused batch array, so the scoring thread neither stacks nor
allocates. Where CUDA is present those arrays live in page-locked memory, which the copy to the
GPU reads directly (at most ``DECODE_AHEAD + 1`` batches of them per task).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from deepsift.detect.scoring import FaceScorer
from deepsift.faces.crops import decode_crop

SCORED_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("frame_index", pa.int32()),
    ("face_index", pa.int32()),
    ("score", pa.float32()),
])
"""What :func:`score_crop_batches` yields: the face's key and its probability of manipulation (the detect UDF's
output, ``deepsift.detect.devices.DETECT_OUTPUT_SCHEMA``, is these columns and two more)."""

DECODE_AHEAD = 2
"""Batches being decoded on the pool while one is scored."""


def crop_decode_threads(device: str) -> int:
    """Threads that decode crops for one detect task on ``device``: one on the CPU (a task holds one
    core), else up to 8 of the cores this process may use, enough to keep ahead of the GPU."""
    if device == "cpu":
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0))))


def score_crop_batches(
    batches: Iterator[pa.RecordBatch],
    scorer: Callable[[], FaceScorer],
    batch_size: int,
    decode_threads: int = 1,
) -> Iterator[pa.RecordBatch]:
    """Decode ``crop`` and score it, ``batch_size`` crops per forward pass, one output batch per pass.

    ``scorer`` is called at each forward pass, so a task with no rows loads no model; it should
    return a process-wide cached scorer (``deepsift.registry.version_files.shared_scorer``), never load per call.
    Input batches need ``video_id``, ``frame_index``, ``face_index`` and ``crop`` (encoded image bytes).
    ``decode_threads`` 1 decodes each batch on the calling thread just before scoring it (a CPU task
    has one core); more decode the next :data:`DECODE_AHEAD` batches on that many threads meanwhile.
    A crop that does not decode, or whose size differs from its batch's first, raises ``ValueError``.
    """
    chunks = _chunks(batches, batch_size)
    if decode_threads <= 1:
        for keys, crops in chunks:
            pixels = _allocate(decode_crop(crops[0]), len(crops))
            _decode_into(crops, pixels, 1, len(crops))
            yield _scored(keys, pixels, scorer, batch_size)
        return
    import torch  # only here: a CPU task, scoring a cached ONNX graph, never imports it

    buffers = _Buffers(pinned=torch.cuda.is_available())
    with ThreadPoolExecutor(decode_threads, thread_name_prefix="crop-decode") as pool:
        ahead: deque[_Pending] = deque()
        for keys, crops in chunks:
            ahead.append(_submit(pool, decode_threads, keys, crops, buffers))
            if len(ahead) > DECODE_AHEAD:
                yield ahead.popleft().score(scorer, batch_size, buffers)
        while ahead:
            yield ahead.popleft().score(scorer, batch_size, buffers)


def _chunks(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[tuple[dict[str, list[object]], list[bytes]]]:
    """Regroup the rows of Arrow batches into (keys, encoded crops) chunks of ``size`` rows."""
    keys: dict[str, list[object]] = {"video_id": [], "frame_index": [], "face_index": []}
    crops: list[bytes] = []
    for batch in batches:
        columns = batch.to_pydict()
        for video_id, frame_index, face_index, crop in zip(
            columns["video_id"], columns["frame_index"], columns["face_index"], columns["crop"], strict=True
        ):
            keys["video_id"].append(video_id)
            keys["frame_index"].append(frame_index)
            keys["face_index"].append(face_index)
            crops.append(crop)
            if len(crops) == size:
                yield keys, crops
                keys = {name: [] for name in keys}
                crops = []
    if crops:
        yield keys, crops


def _allocate(first: np.ndarray, rows: int, pinned: bool = False) -> np.ndarray:
    if pinned:
        import torch

        pixels = torch.empty((rows, *first.shape), dtype=torch.uint8, pin_memory=True).numpy()
    else:
        pixels = np.empty((rows, *first.shape), dtype=first.dtype)
    pixels[0] = first
    return pixels


def _decode_into(crops: list[bytes], pixels: np.ndarray, start: int, stop: int) -> None:
    """Decode ``crops[start:stop]`` into the same rows of ``pixels`` (whose row 0 set the size)."""
    for row in range(start, stop):
        image = decode_crop(crops[row])
        if image.shape != pixels.shape[1:]:
            raise ValueError(
                f"crop {row} of a batch is {image.shape[1]}x{image.shape[0]} px, but its first crop is "
                f"{pixels.shape[2]}x{pixels.shape[1]}: crops of one preprocess version share one size"
            )
        pixels[row] = image


class _Buffers:
    """Batch arrays handed back after scoring, reused so that decoding does not fault in new pages."""

    def __init__(self, pinned: bool) -> None:
        self._pinned = pinned
        self._free: list[np.ndarray] = []

    def take(self, first: np.ndarray, rows: int) -> np.ndarray:
        for index, buffer in enumerate(self._free):
            if buffer.shape[1:] == first.shape and len(buffer) >= rows:
                pixels = self._free.pop(index)[:rows]
                pixels[0] = first
                return pixels
        return _allocate(first, rows, self._pinned)

    def give_back(self, pixels: np.ndarray) -> None:
        whole = pixels
        while isinstance(whole.base, np.ndarray):  # a pinned array's own base is the torch tensor
            whole = whole.base
        self._free.append(whole)


@dataclass
class _Pending:
    """One batch whose crops are being decoded on the pool."""

    keys: dict[str, list[object]]
    pixels: np.ndarray
    parts: list[Future[None]]

    def score(self, scorer: Callable[[], FaceScorer], batch_size: int, buffers: _Buffers) -> pa.RecordBatch:
        for part in self.parts:
            part.result()  # re-raises a decoding error here, in the task's thread
        scored = _scored(self.keys, self.pixels, scorer, batch_size)
        buffers.give_back(self.pixels)
        return scored


def _submit(
    pool: ThreadPoolExecutor, threads: int, keys: dict[str, list[object]], crops: list[bytes], buffers: _Buffers
) -> _Pending:
    """Decode the first crop here (it sets the batch's size), the rest in ``threads`` slices on the pool."""
    pixels = buffers.take(decode_crop(crops[0]), len(crops))
    bounds = np.linspace(1, len(crops), threads + 1).astype(int)
    parts = [
        pool.submit(_decode_into, crops, pixels, int(start), int(stop))
        for start, stop in itertools.pairwise(bounds)
        if stop > start
    ]
    return _Pending(keys, pixels, parts)


def _scored(
    keys: dict[str, list[object]], pixels: np.ndarray, scorer: Callable[[], FaceScorer], batch_size: int
) -> pa.RecordBatch:
    scores = scorer().score(pixels, batch_size=batch_size)
    return pa.RecordBatch.from_pydict({**keys, "score": scores}, schema=SCORED_SCHEMA)
