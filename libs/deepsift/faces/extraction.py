"""Per-video extraction: sample frames, find faces, crop and encode them.

This is what runs inside the isolated decode worker (``deepsift.media.isolation``): the worker is
started with :func:`init_worker`, which builds the face detector once, and each video is one call
of :func:`extract_video`. Results are small (encoded crops), so crossing the process boundary is
cheap. :func:`extract_listed` is the per-video step around that call (a failed probe decodes nothing,
any MediaError becomes an error result): the extract stage runs it with the isolated worker,
:func:`extract_file` in-process, without Spark (``bench/scan.py``). ``preprocess_version`` names everything that changes the crops, so cached crops are reused
exactly when they would come out the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from deepsift.config import DecodeLimits, FacesConfig, SamplingConfig
from deepsift.faces.crops import crop_face, encode_crop
from deepsift.faces.detector import FaceDetector, build_face_detector
from deepsift.media.probe import probe
from deepsift.media.sampling import sample_frames
from deepsift.media.sources import opened_locally
from deepsift.reasons import MediaError

EXTRACTION_CODE_VERSION = 1
"""Bump when a code change alters crops for the same settings, so old crops are not reused."""
HASHED_ONLY_WHEN_SET = frozenset({"reference_frames_only"})
"""Sampling settings added after versions were registered: hashed only when they differ from their
default, so that the crops of every earlier contract keep their preprocess_version."""
DECODER_THREADS = 1
"""FFmpeg threads per video: every core already runs an extraction task, and on a 30 s 720p clip one
thread cost 30% fewer core-seconds than one per core (1.12 against 1.60, 2-core machine, idle)."""


@dataclass(frozen=True)
class FaceCrop:
    """One detected face of a sampled frame: where it is, how sure the detector was, its encoded crop."""

    frame_index: int
    face_index: int
    ts_s: float
    bbox: tuple[float, float, float, float]
    det_score: float
    crop: bytes


@dataclass
class VideoExtraction:
    """The outcome for one video: ``status`` is ``ok`` (frames were sampled) or ``error`` with a reason."""

    status: str
    reason: str | None = None
    detail: str | None = None
    sample_mode: str | None = None
    n_frames: int = 0
    faces: list[FaceCrop] = field(default_factory=list)
    decode_s: float = 0.0
    faces_s: float = 0.0

    @classmethod
    def failed(cls, error: MediaError, decode_s: float = 0.0) -> VideoExtraction:
        return cls(status="error", reason=error.reason.value, detail=error.detail, decode_s=decode_s)


def preprocess_version(sampling: SamplingConfig, faces: FacesConfig, detector_name: str) -> str:
    """A stable short hash of every setting that changes the crops (the weights' path excluded).

    >>> preprocess_version(SamplingConfig(), FacesConfig(), "haar:frontalface_default")  # doctest: +ELLIPSIS
    'pp-...'
    """
    settings = {
        "code": EXTRACTION_CODE_VERSION,
        "sampling": sampling.model_dump(mode="json", exclude=set(HASHED_ONLY_WHEN_SET - _changed(sampling))),
        "faces": faces.model_dump(mode="json", exclude={"yunet_model_path", "detector"}),
        "detector": detector_name,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return f"pp-{digest[:12]}"


def _changed(settings: SamplingConfig) -> set[str]:
    """The names of ``settings``' fields whose value differs from the field's default."""
    return {
        name for name, spec in type(settings).model_fields.items() if getattr(settings, name) != spec.get_default()
    }


@dataclass
class WorkerState:
    detector: FaceDetector
    faces: FacesConfig


def init_worker(faces_json: str) -> WorkerState:
    """Build the face detector once per worker process, with OpenCV on one thread.

    A scan runs one extraction task per core, so extra OpenCV threads would only compete with the
    other tasks (see :data:`DECODER_THREADS`).
    """
    cv2.setNumThreads(1)
    faces = FacesConfig.model_validate_json(faces_json)
    return WorkerState(detector=build_face_detector(faces), faces=faces)


def extract_video(
    state: WorkerState,
    path: str,
    rotation: int | None,
    sampling: SamplingConfig,
    limits: DecodeLimits,
) -> VideoExtraction:
    """Sample ``path``, detect faces on every sampled frame and return encoded square crops."""
    started = time.perf_counter()
    try:
        sample = sample_frames(path, sampling, limits, rotation=rotation, decoder_threads=DECODER_THREADS)
    except MediaError as error:
        return VideoExtraction.failed(error, decode_s=time.perf_counter() - started)
    decoded = time.perf_counter()
    cfg = state.faces
    crops: list[FaceCrop] = []
    for frame in sample.frames:
        for face_index, box in enumerate(state.detector.detect(frame.image)):
            crop = crop_face(frame.image, box, cfg.margin, cfg.crop_size)
            crops.append(
                FaceCrop(
                    frame_index=frame.frame_index,
                    face_index=face_index,
                    ts_s=frame.ts_s,
                    bbox=(box.x, box.y, box.w, box.h),
                    det_score=box.score,
                    crop=encode_crop(crop, cfg.image_format, cfg.jpeg_quality),
                )
            )
    return VideoExtraction(
        status="ok",
        sample_mode=sample.mode,
        n_frames=len(sample.frames),
        faces=crops,
        decode_s=decoded - started,
        faces_s=time.perf_counter() - decoded,
    )


def extract_listed(
    video: Mapping[str, Any],
    extract: Callable[[str, int | None], VideoExtraction],
    open_locally: Callable[[str], AbstractContextManager[Path]] = opened_locally,
) -> VideoExtraction:
    """One video as its ``videos`` row gives it (``uri``, ``probe_status``, ``probe_error``, ``rotation``),
    never an exception: a failed probe becomes an error result without reading the file, and a
    :class:`MediaError` while staging or extracting becomes one with its reason.

    ``extract(local_path, rotation)`` runs :func:`extract_video`: through the isolated worker in the
    extract stage, in this process in :func:`extract_file`.
    """
    if video["probe_status"] != "ok":
        reason, _, detail = (video["probe_error"] or "open_error: probe failed").partition(": ")
        return VideoExtraction(status="error", reason=reason, detail=detail)
    try:
        with open_locally(video["uri"]) as path:
            return extract(str(path), video["rotation"])
    except MediaError as error:
        return VideoExtraction.failed(error)


def extract_file(state: WorkerState, path: str, sampling: SamplingConfig, limits: DecodeLimits) -> VideoExtraction:
    """Probe, sample, detect faces and crop one local file in this process, as the extract stage does for
    an ingested video: the whole per-video pipeline without Spark or an isolated worker."""
    probed = probe(path, limits)
    row = {"uri": path, "probe_status": probed.probe_status, "probe_error": probed.probe_error, "rotation": probed.rotation}

    def run(local_path: str, rotation: int | None) -> VideoExtraction:
        return extract_video(state, local_path, rotation, sampling, limits)

    return extract_listed(row, run)


def detector_name(state: WorkerState) -> str:
    """Which detector a worker really runs (a missing YuNet file means the Haar fallback)."""
    return state.detector.name
