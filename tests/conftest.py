"""Shared fixtures.

Test media and face-detector weights are read from ``../shared`` beside the repository (never copied
in). ``DEEPSIFT_SHARED`` points elsewhere when the checkout lives somewhere else.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("DEEPSIFT_SHARED", REPO_ROOT.parent / "shared")).resolve()
MEDIA_DIR = SHARED_DIR / "media"
YUNET_640 = SHARED_DIR / "models" / "yunet_n_640_640.onnx"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set DEEPSIFT_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The shared test media: ``faces/``, ``no_faces/``, ``edge/`` and ``manifest.csv``."""
    return _require(MEDIA_DIR)


@pytest.fixture(scope="session")
def media_manifest(media_dir: Path) -> dict[str, dict[str, str]]:
    """``manifest.csv`` rows keyed by the file's path relative to the media folder."""
    with (media_dir / "manifest.csv").open(newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="session")
def yunet_model() -> Path:
    """YuNet weights from the shared folder; tests never download them."""
    return _require(YUNET_640)
