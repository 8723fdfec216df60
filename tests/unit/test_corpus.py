"""A corpus of real faces: crops and landmarks as the scan cuts them; bad files skipped and counted."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepsift.detect.corpus import CorpusError, corpus_caveats, load_corpus, read_manifest
from deepsift.faces.crops import decode_crop, find_landmarks_in_crop
from deepsift.faces.detector import YuNetDetector
from tests.conftest import SHARED_DIR

CORPUS = SHARED_DIR / "faces-train"
COLUMNS = ["path", "source", "identity_id", "license", "attribution", "sha256"]


@pytest.fixture(scope="module")
def detector(yunet_model: Path) -> YuNetDetector:
    return YuNetDetector(yunet_model, score_threshold=0.8, detect_max_side=640, min_face_px=24, max_faces=4)


@pytest.fixture(scope="module")
def shared_rows() -> list[dict[str, str]]:
    with (CORPUS / "MANIFEST.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_corpus(folder: Path, rows: list[dict[str, str]]) -> Path:
    with (folder / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, shared_rows) -> Path:
    """Two stills and a clip of the shared corpus, plus five files that must be skipped."""
    folder = tmp_path_factory.mktemp("corpus")
    stills = [row for row in shared_rows if row["path"].startswith("stills/frl_london_neutral/")][:2]
    clip = next(row for row in shared_rows if row["path"].startswith("video/"))
    rows = []
    for row in [*stills, clip]:
        target = folder / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / row["path"], target)
        rows.append(row)
    bad = folder / "bad"
    bad.mkdir()
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(bad / "wall.png"), np.full((200, 200, 3), 127, np.uint8))
    (bad / "truncated.mp4").write_bytes((CORPUS / clip["path"]).read_bytes()[:300])
    tampered = bad / "tampered.jpg"
    shutil.copyfile(CORPUS / stills[0]["path"], tampered)
    base = {"source": "test", "license": "CC0", "attribution": "made by the test"}
    rows += [
        {**base, "path": "bad/corrupt.jpg", "identity_id": "x:1"},
        {**base, "path": "bad/wall.png", "identity_id": "x:2"},
        {**base, "path": "bad/truncated.mp4", "identity_id": "x:3"},
        {**base, "path": "bad/tampered.jpg", "identity_id": "x:4", "sha256": hashlib.sha256(b"other").hexdigest()},
        {**base, "path": "bad/absent.jpg", "identity_id": "x:5"},
    ]
    return _write_corpus(folder, rows)


def test_every_usable_file_gives_crops_with_landmarks_and_bad_ones_are_counted(small_corpus, detector):
    corpus = load_corpus(small_corpus, detector, margin=0.3, crop_size=96, frames_per_clip=3)
    assert corpus.files_used == 3 and corpus.identities == 3
    assert dict(corpus.skipped) == {"unreadable": 1, "no_face": 1, "no_video_stream": 1, "sha256_mismatch": 1, "missing": 1}
    stills = [s for s in corpus.samples if s.unit.startswith("stills/")]
    clips = [s for s in corpus.samples if s.unit.startswith("video/")]
    assert len(stills) == 2 and len(clips) == 3
    assert {s.source for s in corpus.samples} == {"frl_london_neutral", clips[0].source}
    for sample in corpus.samples:
        crop = decode_crop(sample.crop)
        assert crop.shape == (96, 96, 3)
        assert sample.landmarks is not None
        points = np.array(sample.landmarks)
        assert ((points > 0) & (points < 96)).all()
        assert points[0, 0] < points[1, 0] and points[3, 1] > points[2, 1] > points[0, 1]  # eyes, nose, mouth
    assert set(corpus.licences) == {"frl_london_neutral", clips[0].source}


def test_landmarks_found_again_in_a_stored_crop_match_the_ones_cut_with_it(small_corpus, detector):
    sample = load_corpus(small_corpus, detector, margin=0.3, crop_size=128).samples[0]
    found = find_landmarks_in_crop(detector, decode_crop(sample.crop))
    assert found is not None
    assert np.abs(np.array(found) - np.array(sample.landmarks)).max() < 128 * 0.05


def test_manifest_problems_name_the_file_and_the_column(tmp_path):
    with pytest.raises(CorpusError, match=r"MANIFEST\.csv not found"):
        read_manifest(tmp_path)
    (tmp_path / "MANIFEST.csv").write_text("path,source\na.jpg,x\n")
    with pytest.raises(CorpusError, match=r"lacks the column.*identity_id, license, attribution"):
        read_manifest(tmp_path)


def test_the_caveats_a_model_card_must_carry_come_from_the_corpus_readme(tmp_path):
    assert "Canada set is all young White adults" in corpus_caveats(CORPUS)
    assert corpus_caveats(tmp_path) is None
