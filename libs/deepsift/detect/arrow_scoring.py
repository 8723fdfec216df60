"""Arrow batches of face crops in, Arrow batches of scores out: the body of the scan's detect UDF.

Free of Spark on purpose, so the exact function the executors run can also be fed directly (the GPU
benchmark does, on hosts without Java or pyspark). Crops are decoded and scored ``batch_size`` at a
time whatever size Arrow hands them over in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
"""What :func:`score_crop_batches` yields: the face's key and its probability of manipulation."""


def score_crop_batches(
    batches: Iterator[pa.RecordBatch], scorer: Callable[[], FaceScorer], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Decode ``crop`` and score it, ``batch_size`` crops per forward pass, one output batch per pass.

    ``scorer`` is called at the first forward pass, so a task with no rows loads no model; it should
    return a process-wide cached scorer (``deepsift.stages.score.shared_scorer``), never load per call.
    Input batches need ``video_id``, ``frame_index``, ``face_index`` and ``crop`` (encoded image bytes).
    """
    keys: dict[str, list[object]] = {"video_id": [], "frame_index": [], "face_index": []}
    crops: list[np.ndarray] = []

    def flush() -> pa.RecordBatch:
        scores = scorer().score(np.stack(crops), batch_size=batch_size)
        batch = pa.RecordBatch.from_pydict({**keys, "score": scores}, schema=SCORED_SCHEMA)
        for column in keys.values():
            column.clear()
        crops.clear()
        return batch

    for batch in batches:
        columns = batch.to_pydict()
        for video_id, frame_index, face_index, crop in zip(
            columns["video_id"], columns["frame_index"], columns["face_index"], columns["crop"], strict=True
        ):
            keys["video_id"].append(video_id)
            keys["frame_index"].append(frame_index)
            keys["face_index"].append(face_index)
            crops.append(decode_crop(crop))
            if len(crops) == batch_size:
                yield flush()
    if crops:
        yield flush()
