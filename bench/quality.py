"""Benchmark: how well do registered detector versions tell real clips from manipulated ones?

For every version named (numbers or ``@alias``), the clips of a labels CSV (``file``, ``label``,
optional ``kind``, paths relative to the CSV; the development set's ``MANIFEST.csv`` is one) are
extracted under that version's contract, scored, aggregated per video with the contract's rule, and
measured: video-level AUC, average precision, equal error rate and the true-positive rate at 1 % and
5 % false positives, over all clips and for each kind of fake against every real clip. Extraction is
cached per preprocessing version under the home, so a second run, or a second version with the same
contract, only scores.

With ``--reals DIR`` it also counts, for each version, how many clips of a folder of real videos
its own thresholds flag (the false-positive rates the calibration actually reaches there).

The figures go to each version's MLflow run (metrics ``quality_<kind>_<figure>``, tag
``quality_set`` naming the exact clip set) and are printed as one markdown table, versions side by
side, ready for ``docs/benchmarks.md``.

    python bench/quality.py --labels ../shared/eval-dev/MANIFEST.csv --models @champion 1 2 [--names ...]
        [--reals ../shared/media/faces]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from deepsift.config import load_config
from deepsift.detect.evaluation import eval_set_id
from deepsift.detect.quality import (
    QualityRow,
    RealClipVerdicts,
    clip_faces,
    quality_rows,
    read_labels_csv,
    real_clip_verdicts,
    real_clips,
)
from deepsift.registry.mlflow_models import DetectorRegistry

FIGURES = ("auc", "ap", "eer", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="CSV with file, label and optional kind")
    parser.add_argument("--models", nargs="+", required=True, help="versions or @aliases to compare")
    parser.add_argument("--names", nargs="*", help="a display name per model (default: the version)")
    parser.add_argument("--reals", type=Path, help="a folder of real clips: count what each version flags there")
    parser.add_argument("--config", help="deepsift config file (default: the embedded home)")
    parser.add_argument("--no-log", action="store_true", help="do not record the figures in MLflow")
    args = parser.parse_args()
    if args.names and len(args.names) != len(args.models):
        parser.error("--names needs one name per model")

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    config = load_config(args.config)
    registry = DetectorRegistry(config.mlflow, config.home)
    clips = read_labels_csv(args.labels)
    clip_set = eval_set_id([str(clip.path) for clip in clips], [clip.label for clip in clips])
    rows: list[QualityRow] = []
    flagged: list[RealClipVerdicts] = []
    for position, model in enumerate(args.models):
        info = registry.resolve(model)
        name = args.names[position] if args.names else f"v{info.version} {info.contract.architecture}"
        started = time.perf_counter()
        scorer = registry.load_scorer(info.version, device="cpu")
        videos = clip_faces(clips, scorer.contract, config)
        measured = quality_rows(name, scorer, clips, videos)
        rows += measured
        if args.reals:
            reals = real_clips(args.reals)
            flagged.append(real_clip_verdicts(name, scorer, clip_faces(reals, scorer.contract, config)))
        faceless = sum(1 for video in videos if len(video.crops) == 0)
        print(f"{name}: {len(videos)} clips, {faceless} without a face, {time.perf_counter() - started:.0f} s")
        if not args.no_log:
            for row in measured:
                for figure in FIGURES:
                    registry.client.log_metric(info.run_id, f"quality_{row.kind}_{figure}", getattr(row, figure))
            registry.client.set_tag(info.run_id, "quality_set", clip_set)
    print()
    print(markdown(rows))
    if flagged:
        print()
        print(f"| model | real clips of {args.reals} | scored | suspicious or worse | manipulated |")
        print("|---|---|---|---|---|")
        for row in flagged:
            print(f"| {row.model} | {row.n_clips} | {row.n_scored} | {row.n_suspicious} | {row.n_manipulated} |")


def markdown(rows: list[QualityRow]) -> str:
    """One line per (model, kind): the clips counted and every figure."""
    lines = [
        "| model | kind | real / fake | AUC | AP | EER | TPR @ 1% FPR | TPR @ 5% FPR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.kind} | {row.n_real} / {row.n_fake} | {row.auc:.3f} | {row.ap:.3f} | "
            f"{row.eer:.3f} | {row.tpr_at_1pct_fpr:.2f} | {row.tpr_at_5pct_fpr:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
