"""Detection quality on a labelled set of clips: video-level AUC, AP, EER and TPR at low FPR, per kind.

The clips are listed in a CSV (``file``, ``label``, optional ``kind``; paths relative to the CSV), such
as the manifest of a development set. Faces are extracted exactly as a scan would under each model's
contract, in this process (no Spark: a few dozen clips do not need a cluster), and cached per
``preprocess_version`` so that versions sharing a contract share the crops. Each kind of fake is
measured against every real clip, because a detector that only catches face swaps should say so.
What each extraction cost (frames, faces, CPU seconds) is cached with its crops, so that contracts
that trade crops for less work per video can be compared on cost as well as on quality
(:func:`clip_extractions`, :func:`score_agreement`).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from deepsift.config import Config
from deepsift.detect.contract import PreprocessContract, config_for_contract
from deepsift.detect.evaluation import VideoFaces, VideoScores, score_videos
from deepsift.detect.metrics import equal_error_rate
from deepsift.detect.scoring import FaceScorer
from deepsift.errors import DeepsiftError
from deepsift.faces.crops import decode_crop
from deepsift.faces.extraction import WorkerState, extract_video, init_worker, preprocess_version
from deepsift.files import replaced_on_success
from deepsift.verdicts.aggregation import aggregate

REAL_LABELS = frozenset({"0", "real", "authentic"})
FAKE_LABELS = frozenset({"1", "fake", "manipulated"})
ALL_KINDS = "all"
CACHE_FORMAT = 2
"""In a cached file's name: format 2 holds the extraction's frame count and CPU seconds next to the crops."""


@dataclass(frozen=True)
class LabelledClip:
    """One clip of a labels CSV: its file, whether it is fake, and what kind of fake."""

    path: Path
    label: int
    """1 manipulated, 0 authentic."""
    kind: str
    """What kind of fake (``swap``, ``lipsync``, ...); ``real`` for authentic clips."""


@dataclass(frozen=True)
class QualityRow:
    """One model on one kind of fake (or ``all``), against every real clip."""

    model: str
    kind: str
    n_real: int
    n_fake: int
    auc: float
    ap: float
    eer: float
    tpr_at_1pct_fpr: float
    tpr_at_5pct_fpr: float


class LabelsFileError(DeepsiftError, ValueError):
    """The labels CSV is unusable: missing columns, an unknown label, or files that are not there."""


def read_labels_csv(path: Path) -> list[LabelledClip]:
    """The clips a labels CSV lists; every file must exist (the error names the missing ones)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"file", "label"} <= columns:
            raise LabelsFileError(f"{path} needs the columns file and label, has {', '.join(sorted(columns))}")
        clips = []
        for line, row in enumerate(reader, start=2):
            label = row["label"].strip().lower()
            if label not in REAL_LABELS | FAKE_LABELS:
                raise LabelsFileError(f"{path} line {line}: label {row['label']!r} is not real/fake, authentic/manipulated or 0/1")
            fake = label in FAKE_LABELS
            kind = (row.get("kind") or "").strip() or ("fake" if fake else "real")
            clips.append(LabelledClip(path.parent / row["file"], int(fake), kind))
    missing = [str(clip.path) for clip in clips if not clip.path.is_file()]
    if missing:
        raise LabelsFileError(f"{len(missing)} file(s) listed in {path} do not exist: {', '.join(missing[:5])}")
    if {clip.label for clip in clips} != {0, 1}:
        raise LabelsFileError(f"{path} must list both real and fake clips")
    return clips


@dataclass(frozen=True)
class ClipCost:
    """What extracting one clip gave and took: frames sampled, faces cropped, CPU seconds in this process."""

    n_frames: int
    n_faces: int
    cpu_s: float


def clip_faces(clips: list[LabelledClip], contract: PreprocessContract, config: Config) -> list[VideoFaces]:
    """The face crops of every clip under ``contract``, extracted like a scan and cached on disk."""
    return [faces for faces, _ in clip_extractions(clips, contract, config)]


def clip_extractions(
    clips: list[LabelledClip], contract: PreprocessContract, config: Config
) -> list[tuple[VideoFaces, ClipCost]]:
    """Each clip's crops under ``contract`` and what extracting them cost, cached per preprocess_version."""
    model_config = config_for_contract(config, contract)
    state = init_worker(model_config.faces.model_dump_json())
    version = preprocess_version(model_config.sampling, model_config.faces, state.detector.name)
    cache = config.home / "cache" / "quality" / version
    cache.mkdir(parents=True, exist_ok=True)
    extracted = []
    for clip in clips:
        stat = clip.path.stat()
        cached = cache / f"{clip.path.stem}-{stat.st_size}-{int(stat.st_mtime)}.v{CACHE_FORMAT}.npz"
        if not cached.is_file():
            _extract_into(cached, state, clip.path, model_config, contract.input_size)
        with np.load(cached) as stored:
            crops, frames = stored["crops"], stored["frames"]
            cost = ClipCost(int(stored["n_frames"]), len(frames), float(stored["cpu_s"]))
        extracted.append((VideoFaces(str(clip.path), clip.label, crops, frames), cost))
    return extracted


def _extract_into(cached: Path, state: WorkerState, path: Path, config: Config, size: int) -> None:
    """Extract ``path`` as a scan would and save its crops, frame indices and cost to ``cached``."""
    started = time.process_time()
    extraction = extract_video(state, str(path), None, config.sampling, config.decode)
    cpu_s = time.process_time() - started
    faces = extraction.faces
    crops = np.stack([decode_crop(face.crop) for face in faces]) if faces else np.zeros((0, size, size, 3), np.uint8)
    frames = np.array([face.frame_index for face in faces], dtype=np.int64)
    with replaced_on_success(cached) as partial:
        np.savez(partial, crops=crops, frames=frames, n_frames=extraction.n_frames, cpu_s=cpu_s)


@dataclass(frozen=True)
class ScoreAgreement:
    """How closely one contract's video scores follow a reference contract's, on the videos both scored."""

    n_videos: int
    spearman: float
    """Rank correlation of the two sets of video scores."""
    mean_abs_difference: float


def score_agreement(reference: VideoScores, other: VideoScores) -> ScoreAgreement:
    """Compare ``other``'s video scores with ``reference``'s: with a detector near chance an AUC says little,
    but scores that barely move say that the crops barely moved.

    >>> a = VideoScores(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9]), ("a", "b", "c"), ())
    >>> b = VideoScores(np.array([1, 1]), np.array([0.8, 0.6]), ("c", "b"), ("a",))
    >>> score_agreement(a, b)
    ScoreAgreement(n_videos=2, spearman=1.0, mean_abs_difference=0.1)
    """
    theirs = dict(zip(other.video_ids, other.scores.tolist(), strict=True))
    pairs = [(score, theirs[video]) for video, score in zip(reference.video_ids, reference.scores.tolist(), strict=True) if video in theirs]
    first = np.array([a for a, _ in pairs])
    second = np.array([b for _, b in pairs])
    rho = float(np.corrcoef(_average_ranks(first), _average_ranks(second))[0, 1]) if len(pairs) > 1 else float("nan")
    return ScoreAgreement(len(pairs), round(rho, 6), round(float(np.abs(first - second).mean()), 6))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing their mean rank (what Spearman's correlation correlates)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    return (first_rank + (counts - 1) / 2)[inverse]


def quality_rows(model: str, scorer: FaceScorer, clips: list[LabelledClip], videos: list[VideoFaces]) -> list[QualityRow]:
    """``model``'s figures on all clips and on each kind of fake; clips without a face are left out."""
    return quality_rows_of(model, clips, score_videos(scorer, videos, scorer.contract.aggregation))


def quality_rows_of(model: str, clips: list[LabelledClip], scored: VideoScores) -> list[QualityRow]:
    """The figures of :func:`quality_rows` from video scores already computed."""
    kind_of = {str(clip.path): clip.kind for clip in clips}
    kinds = np.array([kind_of[video_id] for video_id in scored.video_ids])
    rows = [_row(model, ALL_KINDS, scored.labels, scored.scores)]
    for kind in sorted({clip.kind for clip in clips if clip.label == 1}):
        keep = (scored.labels == 0) | (kinds == kind)
        if scored.labels[keep].sum() > 0:
            rows.append(_row(model, kind, scored.labels[keep], scored.scores[keep]))
    return rows


@dataclass(frozen=True)
class RealClipVerdicts:
    """How a model's own thresholds judge clips known to be real: the false-positive rates reached."""

    model: str
    n_clips: int
    n_scored: int
    """Clips with at least one face; the others get ``no_face``, not a score."""
    n_suspicious: int
    """Scored at or above ``suspicious`` (this includes the manipulated ones)."""
    n_manipulated: int


def real_clip_verdicts(model: str, scorer: FaceScorer, videos: list[VideoFaces]) -> RealClipVerdicts:
    """Count the real ``videos`` that ``scorer``'s contract thresholds would flag."""
    scores = [
        aggregate(scorer.contract.aggregation, scorer.score(video.crops), video.frame_indices)
        for video in videos
        if len(video.crops)
    ]
    thresholds = scorer.contract.thresholds
    return RealClipVerdicts(
        model=model,
        n_clips=len(videos),
        n_scored=len(scores),
        n_suspicious=sum(score >= thresholds.suspicious for score in scores),
        n_manipulated=sum(score >= thresholds.manipulated for score in scores),
    )


def real_clips(folder: Path) -> list[LabelledClip]:
    """Every file directly in ``folder``, as a real clip (for :func:`real_clip_verdicts`)."""
    return [LabelledClip(path, 0, "real") for path in sorted(Path(folder).iterdir()) if path.is_file()]


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """The highest true-positive rate whose false-positive rate is at most ``fpr_target``.

    >>> tpr_at_fpr(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.5, 0.9]), 0.0)
    0.5
    """
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= fpr_target + 1e-12].max())


def _row(model: str, kind: str, labels: np.ndarray, scores: np.ndarray) -> QualityRow:
    return QualityRow(
        model=model,
        kind=kind,
        n_real=int((labels == 0).sum()),
        n_fake=int(labels.sum()),
        auc=float(roc_auc_score(labels, scores)),
        ap=float(average_precision_score(labels, scores)),
        eer=equal_error_rate(labels, scores),
        tpr_at_1pct_fpr=tpr_at_fpr(labels, scores, 0.01),
        tpr_at_5pct_fpr=tpr_at_fpr(labels, scores, 0.05),
    )
