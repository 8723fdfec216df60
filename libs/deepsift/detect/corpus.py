"""A folder of real faces to train on: photos and short clips of known people, with their licences.

Layout: any folders of images (``.jpg``, ``.jpeg``, ``.png``) and videos, and a ``MANIFEST.csv`` at
the top naming each file with at least ``path``, ``source``, ``identity_id``, ``license`` and
``attribution``; a ``sha256`` column, where present, is checked. The identity is what training
splits on, and the attribution is what the model card must show for each source.

Every file becomes face crops exactly as the scan makes them (the contract's face detector, margin
and size), with the five landmarks of each face for the self-blended mask: the best face of a
photo, and of each of a few frames spread over a clip. A file that cannot be read, does not match
its checksum, or shows no face is skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from deepsift.config import DecodeLimits, SamplingConfig
from deepsift.detect.training import FaceSample
from deepsift.errors import DeepsiftError
from deepsift.faces.crops import crop_face, crop_landmarks, encode_crop
from deepsift.faces.detector import FaceDetector
from deepsift.files import file_sha256
from deepsift.media.sampling import sample_frames
from deepsift.reasons import MediaError

MANIFEST = "MANIFEST.csv"
REQUIRED_COLUMNS = ("path", "source", "identity_id", "license", "attribution")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
CROP_FORMAT: Final = "png"
"""Lossless: training adds its own JPEG jitter, and a second JPEG pass would mark every real crop."""


class CorpusError(DeepsiftError, ValueError):
    """The corpus folder or its manifest is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class CorpusEntry:
    """One manifest row."""

    path: str
    source: str
    identity_id: str
    license: str
    attribution: str
    sha256: str | None = None


@dataclass
class CorpusFaces:
    """The crops of a corpus, what was skipped and why, and the attribution each source requires."""

    samples: list[FaceSample] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    files_used: int = 0
    licences: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """source -> (licence, its distinct attribution texts), for the sources that contributed faces."""

    @property
    def identities(self) -> int:
        return len({sample.group for sample in self.samples})


def read_manifest(folder: Path) -> list[CorpusEntry]:
    """The manifest's rows; :class:`CorpusError` when it is missing or lacks a required column."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        raise CorpusError(f"{manifest} not found: a training corpus lists its files, identities and licences there")
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{manifest} lacks the column(s) {', '.join(missing)}")
        return [
            CorpusEntry(
                path=row["path"],
                source=row["source"],
                identity_id=row["identity_id"],
                license=row["license"],
                attribution=row["attribution"],
                sha256=(row.get("sha256") or None),
            )
            for row in reader
        ]


def load_corpus(
    folder: Path,
    detector: FaceDetector,
    margin: float,
    crop_size: int,
    frames_per_clip: int = 8,
    limits: DecodeLimits | None = None,
) -> CorpusFaces:
    """Face crops (with landmarks) of every manifest file, crop by crop as the scan would cut them."""
    folder = Path(folder)
    corpus = CorpusFaces()
    sampling = SamplingConfig(frames_per_video=frames_per_clip)
    for entry in read_manifest(folder):
        path = folder / entry.path
        try:
            images = _images(path, entry, sampling, limits or DecodeLimits())
        except _Skip as skip:
            corpus.skipped[skip.reason] += 1
            continue
        samples = [
            sample
            for image in images
            if (sample := _face_sample(image, entry, detector, margin, crop_size)) is not None
        ]
        if not samples:
            corpus.skipped["no_face"] += 1
            continue
        corpus.samples.extend(samples)
        corpus.files_used += 1
        attributions = corpus.licences.setdefault(entry.source, (entry.license, []))[1]
        if entry.attribution not in attributions:
            attributions.append(entry.attribution)
    return corpus


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _images(path: Path, entry: CorpusEntry, sampling: SamplingConfig, limits: DecodeLimits) -> list[np.ndarray]:
    if not path.is_file():
        raise _Skip("missing")
    if entry.sha256 and file_sha256(path) != entry.sha256.lower():
        raise _Skip("sha256_mismatch")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise _Skip("unreadable")
        return [image]
    try:
        return [frame.image for frame in sample_frames(path, sampling, limits, decoder_threads=1).frames]
    except MediaError as error:
        raise _Skip(error.reason.value) from None


def _face_sample(
    image: np.ndarray, entry: CorpusEntry, detector: FaceDetector, margin: float, crop_size: int
) -> FaceSample | None:
    faces = detector.detect(image)
    if not faces:
        return None
    face = faces[0]
    height, width = image.shape[:2]
    return FaceSample(
        group=entry.identity_id,
        unit=entry.path,
        crop=encode_crop(crop_face(image, face, margin, crop_size), CROP_FORMAT, 95),
        landmarks=crop_landmarks(face, margin, crop_size, width, height),
        source=entry.source,
    )


def corpus_caveats(folder: Path) -> str | None:
    """The paragraph of the corpus README that starts with "Caveats", which a model card must carry."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return None
    for paragraph in readme.read_text(encoding="utf-8").split("\n\n"):
        if paragraph.lstrip().lower().startswith("caveats"):
            return " ".join(paragraph.split())
    return None
