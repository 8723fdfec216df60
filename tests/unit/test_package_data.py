"""A wheel built from the checkout carries every file of the package, so a plain `pip install .` has them.

An editable install reads the source tree, where every file is present anyway; only a real build
shows that ``[tool.setuptools.package-data]`` covers the data files (the YuNet weights and their
licence, the SQL extension's source, the saved queries, the report template). The build runs the
project's own backend from this environment (``--no-build-isolation``), offline.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from deepsift.faces.weights import PACKAGED_YUNET_SHA256
from tests.conftest import REPO_ROOT


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    source = tmp_path / "source"
    package = source / "libs" / "deepsift"
    shutil.copytree(
        REPO_ROOT / "libs" / "deepsift", package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    built = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
            "--wheel-dir", str(tmp_path / "dist"), str(source),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("deepsift-*.whl")
    in_tree = {path.relative_to(source / "libs").as_posix() for path in package.rglob("*") if path.is_file()}
    assert {"deepsift/faces/models/yunet_n_640_640.onnx", "deepsift/faces/models/LICENSE"} <= in_tree
    with zipfile.ZipFile(wheel) as archive:
        assert sorted(in_tree - set(archive.namelist())) == []
        weights = archive.read("deepsift/faces/models/yunet_n_640_640.onnx")
    assert hashlib.sha256(weights).hexdigest() == PACKAGED_YUNET_SHA256
