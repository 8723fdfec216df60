"""Benchmark: how well do registered detector versions tell real clips from manipulated ones?

For every version named (numbers or ``@alias``), the clips of a labels CSV (``file``, ``label``,
optional ``kind``, paths relative to the CSV; the development set's ``MANIFEST.csv`` is one) are
extracted under that version's contract, scored, aggregated per video with the contract's rule, and
measured: video-level AUC, average precision, equal error rate and the true-positive rate at 1 % and
5 % false positives, over all clips and for each kind of fake against every real clip. Extraction is
cached per preprocessing version under the home, so a second run, or a second version with the same
contract, only scores.

With ``--variant NAME OPTION=VALUE...`` (repeatable) the weights of the first model are registered
again under its contract with those extraction options changed (``frames_per_video``,
``detect_max_side``, ``keyframe_min_coverage``, ``reference_frames_only``), a new version each time,
and measured next to it. For every model a second table gives what extraction cost per clip (frames,
faces, CPU seconds in this one-threaded process, as measured when the crops were first extracted)
and how far its video scores moved from the first model's: the AUC's change, the rank correlation
(Spearman) and the mean absolute difference of the scores of the clips both scored. Pass a variant's
version number to ``--models`` to measure it again without registering another copy.

With ``--reals DIR`` it also counts, for each version, how many clips of a folder of real videos
its own thresholds flag (the false-positive rates the calibration actually reaches there).

The figures go to each version's MLflow run (metrics ``quality_<kind>_<figure>``, tag
``quality_set`` naming the exact clip set) and are printed as one markdown table, versions side by
side, ready for ``docs/benchmarks.md``.

    python bench/quality.py --labels ../shared/eval-dev/MANIFEST.csv --models @champion 1 2 [--names ...]
        [--reals ../shared/media/faces] [--variant nonref reference_frames_only=true ...]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsift.config import load_config
from deepsift.detect.contract import contract_with_options
from deepsift.detect.evaluation import VideoScores, eval_set_id, score_videos
from deepsift.detect.quality import (
    ALL_KINDS,
    ClipCost,
    QualityRow,
    RealClipVerdicts,
    clip_extractions,
    clip_faces,
    quality_rows_of,
    read_labels_csv,
    real_clip_verdicts,
    real_clips,
    score_agreement,
)
from deepsift.registry.mlflow_models import DetectorRegistry

FIGURES = ("auc", "ap", "eer", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")


@dataclass(frozen=True)
class Measured:
    """One model's video scores and extraction costs, for the comparison with the first model."""

    name: str
    auc: float
    scores: VideoScores
    costs: list[ClipCost]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True, help="CSV with file, label and optional kind")
    parser.add_argument("--models", nargs="+", required=True, help="versions or @aliases to compare")
    parser.add_argument("--names", nargs="*", help="a display name per model (default: the version)")
    parser.add_argument(
        "--variant", nargs="+", action="append", default=[], metavar="NAME OPTION=VALUE",
        help="register the first model's weights again with these contract options, and measure it as NAME",
    )
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
    models = [(model, args.names[position] if args.names else None) for position, model in enumerate(args.models)]
    models += [(str(register_variant(registry, args.models[0], options)), name) for name, *options in args.variant]
    rows: list[QualityRow] = []
    flagged: list[RealClipVerdicts] = []
    measured: list[Measured] = []
    for model, display_name in models:
        info = registry.resolve(model)
        name = display_name or f"v{info.version} {info.contract.architecture}"
        started = time.perf_counter()
        scorer = registry.load_scorer(info.version, device="cpu")
        extracted = clip_extractions(clips, scorer.contract, config)
        videos = [faces for faces, _ in extracted]
        scored = score_videos(scorer, videos, scorer.contract.aggregation)
        found = quality_rows_of(name, clips, scored)
        rows += found
        auc = next(row.auc for row in found if row.kind == ALL_KINDS)
        measured.append(Measured(name, auc, scored, [cost for _, cost in extracted]))
        if args.reals:
            reals = real_clips(args.reals)
            flagged.append(real_clip_verdicts(name, scorer, clip_faces(reals, scorer.contract, config)))
        faceless = sum(1 for video in videos if len(video.crops) == 0)
        print(f"{name}: {len(videos)} clips, {faceless} without a face, {time.perf_counter() - started:.0f} s")
        if not args.no_log:
            for row in found:
                for figure in FIGURES:
                    registry.client.log_metric(info.run_id, f"quality_{row.kind}_{figure}", getattr(row, figure))
            registry.client.set_tag(info.run_id, "quality_set", clip_set)
    print()
    print(markdown(rows))
    print()
    print(cost_markdown(measured))
    if flagged:
        print()
        print(f"| model | real clips of {args.reals} | scored | suspicious or worse | manipulated |")
        print("|---|---|---|---|---|")
        for row in flagged:
            print(f"| {row.model} | {row.n_clips} | {row.n_scored} | {row.n_suspicious} | {row.n_manipulated} |")


def register_variant(registry: DetectorRegistry, model: str, options: list[str]) -> int:
    """Register ``model``'s weights again under its contract with ``options`` changed; the new version."""
    base = registry.resolve(model)
    contract = contract_with_options(base.contract, options)
    network = registry.load_scorer(base.version, device="cpu").network
    weights = {key: tensor.contiguous() for key, tensor in network.state_dict().items()}
    card = f"# Variant of version {base.version}\n\nThe same weights, extracted with {', '.join(options)}.\n"
    info = registry.log_and_register(
        weights, contract, {}, card, run_name=f"variant of v{base.version}",
        params={"variant_of": base.version, "variant_options": " ".join(options)},
    )
    print(f"registered version {info.version}: version {base.version} with {' '.join(options)}")
    return info.version


def cost_markdown(measured: list[Measured]) -> str:
    """Per model: what extraction took per clip, and how its video scores moved from the first model's."""
    reference = measured[0]
    lines = [
        "| model | frames / clip | faces / clip | extraction CPU s / clip | AUC | change | Spearman | mean abs. score change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in measured:
        agreement = score_agreement(reference.scores, model.scores)
        lines.append(
            f"| {model.name} | {np.mean([c.n_frames for c in model.costs]):.1f} | "
            f"{np.mean([c.n_faces for c in model.costs]):.1f} | {np.mean([c.cpu_s for c in model.costs]):.3f} | "
            f"{model.auc:.3f} | {model.auc - reference.auc:+.3f} | {agreement.spearman:.3f} | "
            f"{agreement.mean_abs_difference:.4f} |"
        )
    return "\n".join(lines)


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
