"""Benchmark: what does a scoring cascade cost in detection quality, and what does it save?

One registered version's contract is measured on a labels CSV (the development set's
``MANIFEST.csv``) as :mod:`deepsift.detect.quality` measures it: every clip's faces extracted under
the contract (cached per preprocessing version), every face scored once. Each cascade setting
(``first_frames:margin``) is then simulated over those scores with the rule the stages apply
(``deepsift.verdicts.cascade.judged_faces``): a cascade only leaves faces unscored, so its video
scores are exactly those a scan would give. Printed per setting: video AUC over all clips and per kind
of fake (against every real clip), the change against the full contract, the share of faces and frames
scored, the clips the first pass settled, and whether the setting keeps the all-clips AUC within
``--max-drop`` of the full contract's (and every kind's as well).

    python bench/cascade.py --labels ../shared/eval-dev/MANIFEST.csv --model @champion
        [--settings 4:0.1 8:0.15 ...] [--config FILE]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from deepsift.config import load_config
from deepsift.detect.quality import ALL_KINDS, clip_faces, read_labels_csv
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.verdicts.aggregation import aggregate
from deepsift.verdicts.cascade import Cascade, judged_faces
from deepsift.verdicts.labels import Thresholds

DEFAULT_SETTINGS = ("4:0.05", "4:0.1", "4:0.15", "8:0.05", "8:0.1", "8:0.15", "8:0.2", "16:0.1", "16:0.15")


@dataclass(frozen=True)
class ScoredClip:
    """One clip with faces: its label, kind, and every face's score and frame."""

    label: int
    kind: str
    scores: np.ndarray
    frames: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """One setting (or the full contract) over every clip: video scores and the work done."""

    name: str
    video_scores: np.ndarray
    faces_scored: int
    frames_scored: int
    settled: int


def simulate(name: str, clips: list[ScoredClip], aggregation: str, thresholds: Thresholds, cascade: Cascade | None) -> Outcome:
    """The video scores a scan under ``cascade`` gives, and the faces and frames it scores."""
    video_scores, faces, frames, settled = [], 0, 0, 0
    for clip in clips:
        judged = judged_faces(clip.scores, clip.frames, aggregation, thresholds, cascade)
        assert judged is not None, "every face has a score here"
        video_scores.append(aggregate(aggregation, clip.scores[judged], clip.frames[judged]))
        faces += int(judged.sum())
        frames += len(np.unique(clip.frames[judged]))
        settled += int(not judged.all())
    return Outcome(name, np.array(video_scores), faces, frames, settled)


def aucs(clips: list[ScoredClip], scores: np.ndarray) -> dict[str, float]:
    """Video AUC over all clips and for each kind of fake against every real clip."""
    labels = np.array([clip.label for clip in clips])
    kinds = np.array([clip.kind for clip in clips])
    result = {ALL_KINDS: float(roc_auc_score(labels, scores))}
    for kind in sorted(set(kinds[labels == 1])):
        keep = (labels == 0) | (kinds == kind)
        result[kind] = float(roc_auc_score(labels[keep], scores[keep]))
    return result


def table(clips: list[ScoredClip], full: Outcome, settings: list[Outcome], max_drop: float) -> str:
    """One markdown line per setting: AUC all / per kind (change against full), work, the rule's outcome."""
    reference = aucs(clips, full.video_scores)
    kinds = list(reference)
    faces_total = full.faces_scored
    frames_total = full.frames_scored
    header = ["setting", *(f"AUC {kind}" for kind in kinds), "faces scored", "frames scored", "settled clips", "passes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for outcome in (full, *settings):
        measured = aucs(clips, outcome.video_scores)
        changes = {kind: measured[kind] - reference[kind] for kind in kinds}
        cells = [outcome.name]
        cells += [f"{measured[kind]:.3f}" + ("" if outcome is full else f" ({changes[kind]:+.3f})") for kind in kinds]
        cells.append(f"{outcome.faces_scored} ({outcome.faces_scored / faces_total:.0%})")
        cells.append(f"{outcome.frames_scored} ({outcome.frames_scored / frames_total:.0%})")
        cells.append(f"{outcome.settled} / {len(clips)}")
        if outcome is full:
            cells.append("reference")
        else:
            on_all = changes[ALL_KINDS] >= -max_drop
            everywhere = all(change >= -max_drop for change in changes.values())
            cells.append("all and every kind" if everywhere else ("all only" if on_all else "no"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="CSV with file, label and optional kind")
    parser.add_argument("--model", default="@champion", help="version or @alias whose contract is measured")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="first_frames:margin, each")
    parser.add_argument("--max-drop", type=float, default=0.01, help="AUC a setting may lose against the full contract")
    parser.add_argument("--config", help="deepsift config file (default: the embedded home)")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    config = load_config(args.config)
    registry = DetectorRegistry(config.mlflow, config.home)
    info = registry.resolve(args.model)
    scorer = registry.load_scorer(info.version, device="cpu")
    contract = scorer.contract
    labelled = read_labels_csv(args.labels)
    videos = clip_faces(labelled, contract, config)
    clips = [
        ScoredClip(clip.label, clip.kind, scorer.score(video.crops).astype(np.float64), np.asarray(video.frame_indices))
        for clip, video in zip(labelled, videos, strict=True)
        if len(video.crops)
    ]
    thresholds = contract.thresholds
    print(
        f"v{info.version} {contract.architecture}: {len(clips)} of {len(labelled)} clips with faces, "
        f"{contract.frames_per_video} frames a clip, aggregation {contract.aggregation}, "
        f"thresholds suspicious {thresholds.suspicious:.3f} / manipulated {thresholds.manipulated:.3f}"
    )
    full = simulate(f"full {contract.frames_per_video} frames", clips, contract.aggregation, thresholds, None)
    settings = []
    for setting in args.settings:
        first_frames, margin = setting.split(":")
        cascade = Cascade(first_frames=int(first_frames), margin=float(margin))
        settings.append(simulate(f"cascade {setting}", clips, contract.aggregation, thresholds, cascade))
    print()
    print(table(clips, full, settings, args.max_drop))


if __name__ == "__main__":
    main()
