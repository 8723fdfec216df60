"""Shared fixtures.

Test media and face-detector weights are read from ``../shared`` beside the repository (never copied
in). ``TEST_SHARED_DIR`` points elsewhere when the checkout lives somewhere else (not a ``DEEPSIFT_``
variable: those are configuration keys, and an unknown one is an error).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("TEST_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
MEDIA_DIR = SHARED_DIR / "media"
YUNET_640 = SHARED_DIR / "models" / "yunet_n_640_640.onnx"
YUNET_320 = SHARED_DIR / "models" / "yunet_n_320_320.onnx"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set TEST_SHARED_DIR to the shared folder)")
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
    """The shared folder's copy of the packaged YuNet weights, for tests that give a weights file."""
    return _require(YUNET_640)


@pytest.fixture(scope="session")
def yunet_320_model() -> Path:
    """Other YuNet weights than the packaged ones (the 320x320 export), as a user might configure."""
    return _require(YUNET_320)


SHARED_FIXTURE_GROUPS = {
    "scanned_lake": "scanned-lake",
    "scanned_media": "scanned-media",
    "standalone_cluster": "standalone-cluster",
    "local_scan": "standalone-cluster",
    "airflow_sandbox": "airflow",
    "pseudo_gpu_cluster": "pseudo-gpu-cluster",
}
"""Session fixtures that each cost a minute or more (a scan, a cluster, an Airflow home): under
``pytest -n`` every test that uses one runs in the same worker, so the fixture is built once."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test an ``xdist_group``: the group of the costly shared fixture that some test of its
    module uses, else its module; a module stays whole because its module fixtures are built once too,
    unless it sets ``SPREAD_ACROSS_WORKERS`` (long tests over cheap module fixtures: each test is a group
    of its own). ``--dist loadgroup`` then sends a group to one worker."""
    module_groups: dict[str, set[str]] = {}
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        groups = module_groups.setdefault(item.nodeid.split("::")[0], set())
        groups.update(SHARED_FIXTURE_GROUPS[name] for name in fixtures if name in SHARED_FIXTURE_GROUPS)
    for module, groups in module_groups.items():
        if len(groups) > 1:
            raise pytest.UsageError(f"{module} uses the fixtures of several worker groups: {sorted(groups)}")
    costly = set(SHARED_FIXTURE_GROUPS.values())
    group_of: dict[str, str] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        group = next(iter(module_groups[module]), module)
        if getattr(getattr(item, "module", None), "SPREAD_ACROSS_WORKERS", False):
            group = item.nodeid
            costly.add(group)
        group_of[item.nodeid] = group
        item.add_marker(pytest.mark.xdist_group(group))
    # Costly groups first: run with --no-loadscope-reorder, the workers take groups in this order, so the
    # long ones start at once instead of being left for the end while the other worker runs dry.
    items.sort(key=lambda item: group_of[item.nodeid] not in costly)


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under ``--dist loadgroup`` pytest-xdist keeps a group on one worker by putting the group into each
    test's node id; refuse to run when it did not (a pytest it does not work with)."""
    ungrouped = [nodeid for nodeid in ids if "@" not in nodeid]
    if node.config.getoption("dist") == "loadgroup" and ungrouped:
        pytest.exit(
            f"pytest-xdist did not group {len(ungrouped)} tests (e.g. {ungrouped[0]}): this pytest and "
            "pytest-xdist do not work together; install the versions pyproject.toml's dev extra allows",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
