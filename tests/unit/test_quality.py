"""Detection quality over a labels CSV: real clips extracted like a scan, figures per kind, clear refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsift.config import load_config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.quality import (
    ALL_KINDS,
    LabelsFileError,
    clip_faces,
    quality_rows,
    read_labels_csv,
    tpr_at_fpr,
)
from deepsift.detect.scoring import FaceScorer
from tests.conftest import SHARED_DIR

EVAL_DEV = SHARED_DIR / "eval-dev"
CLIPS = [
    ("real/dagan_driving.mp4", "real", "real"),
    ("real/fomm_demoold_08.mp4", "real", "real"),
    ("fake/vasa1_03.mp4", "fake", "generated"),
    ("fake/dfl_keanu_swap.mp4", "fake", "swap"),
]


def _labels(folder: Path, rows) -> Path:
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "kind"])
        writer.writerows([(str(EVAL_DEV / name), label, kind) for name, label, kind in rows])
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory, yunet_model):
    home = tmp_path_factory.mktemp("quality-home")
    return load_config(environ={}, overrides={"home": str(home), "faces.yunet_model_path": str(yunet_model)})


def test_every_kind_is_measured_against_every_real_clip_and_faces_are_cached(tmp_path, config):
    clips = read_labels_csv(_labels(tmp_path, CLIPS))
    assert [(c.label, c.kind) for c in clips] == [(0, "real"), (0, "real"), (1, "generated"), (1, "swap")]
    torch.manual_seed(0)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64, frames_per_video=4)
    videos = clip_faces(clips, contract, config)
    assert [len(v.crops) for v in videos] == [4, 4, 4, 4] and videos[0].crops.shape[1:] == (64, 64, 3)
    cached = sorted((config.home / "cache" / "quality").rglob("*.npz"))
    assert len(cached) == 4
    again = clip_faces(clips, contract, config)
    assert all(np.array_equal(a.crops, b.crops) for a, b in zip(videos, again, strict=True))

    scorer = FaceScorer(build_detector_network(contract.architecture), contract, device="cpu")
    rows = quality_rows("tiny", scorer, clips, videos)
    assert [(r.kind, r.n_real, r.n_fake) for r in rows] == [(ALL_KINDS, 2, 2), ("generated", 2, 1), ("swap", 2, 1)]
    scores = {v.video_id: float(np.mean(scorer.score(v.crops))) for v in videos}
    real = [scores[str(c.path)] for c in clips if c.label == 0]
    swap = scores[str(clips[3].path)]
    assert rows[2].auc == pytest.approx(np.mean([swap > r for r in real]))


def test_tpr_at_a_false_positive_rate_reads_the_roc_curve():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.5, 0.95])
    assert tpr_at_fpr(labels, scores, 0.0) == 0.5
    assert tpr_at_fpr(labels, scores, 0.25) == 1.0


def test_a_labels_file_with_missing_files_or_bad_labels_is_refused_by_name(tmp_path):
    with pytest.raises(LabelsFileError, match=r"1 file\(s\) listed in .* do not exist: .*nowhere.mp4"):
        read_labels_csv(_labels(tmp_path, [*CLIPS, ("nowhere.mp4", "fake", "swap")]))
    with pytest.raises(LabelsFileError, match="line 2: label 'maybe'"):
        read_labels_csv(_labels(tmp_path, [("real/dagan_driving.mp4", "maybe", "real")]))
    with pytest.raises(LabelsFileError, match="both real and fake"):
        read_labels_csv(_labels(tmp_path, CLIPS[:2]))
    (tmp_path / "bad.csv").write_text("path,truth\n")
    with pytest.raises(LabelsFileError, match="needs the columns file and label"):
        read_labels_csv(tmp_path / "bad.csv")
