"""Test-only fault injection for the scan's Spark Python workers, loaded because this folder is on their
``PYTHONPATH`` (the cluster tests pass it as ``spark.executorEnv.PYTHONPATH``).

Inert unless ``SCAN_FAULTS`` names faults (comma-separated) and ``SCAN_FAULTS_DIR`` a folder:

- ``fail-extract``: the extract stage's first attempt to open a video raises :class:`InjectedFault`;
- ``fail-score``: the first call of the detect UDF body yields its first scored batch, then raises;
- ``pause-extract=S``: the extract stage's first attempt to open a video writes the Python worker's
  pid into the marker and sleeps ``S`` seconds, so that a test can kill the Spark worker it runs
  under, or see a speculative copy of the stalled task finish first.

Each fault fires exactly once across every process of a run: the first caller creates the marker
``SCAN_FAULTS_DIR/<fault>`` with ``O_EXCL``, and only the caller that created it misbehaves. The
modules are patched right after they are imported (an import hook), so processes that never import
them pay nothing, and a worker that forks from the PySpark daemon imports them only after the fork.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import sys
import time
from pathlib import Path

FAULTS = dict(
    part.partition("=")[::2] for part in os.environ.get("SCAN_FAULTS", "").split(",") if part.strip()
)
FAULTS_DIR = os.environ.get("SCAN_FAULTS_DIR")


class InjectedFault(RuntimeError):
    """The failure a test asked for; its name is what the tests look for in Spark's log."""


def _claim(fault: str) -> bool:
    """True for the one caller, in any process, that creates this fault's marker."""
    try:
        descriptor = os.open(Path(FAULTS_DIR, fault), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as marker:
        marker.write(str(os.getpid()))
    return True


def _patch_extract(module) -> None:
    opened_locally = module.opened_locally

    @functools.wraps(opened_locally)
    def faulty_opened_locally(uri: str):
        if "fail-extract" in FAULTS and _claim("fail-extract"):
            raise InjectedFault(f"fail-extract: opening {uri} failed once on purpose")
        if "pause-extract" in FAULTS and _claim("pause-extract"):
            time.sleep(float(FAULTS["pause-extract"]))
        return opened_locally(uri)

    module.opened_locally = faulty_opened_locally


def _patch_score(module) -> None:
    score_crop_batches = module.score_crop_batches

    @functools.wraps(score_crop_batches)
    def faulty_score_crop_batches(*args, **kwargs):
        scored = score_crop_batches(*args, **kwargs)
        first = next(scored, None)
        if first is None:  # an empty partition: nothing to fail
            return
        yield first  # some output has left the task before it fails
        if "fail-score" in FAULTS and _claim("fail-score"):
            raise InjectedFault("fail-score: the detect UDF failed once on purpose")
        yield from scored

    module.score_crop_batches = faulty_score_crop_batches


PATCHES = {"deepsift.stages.extract": _patch_extract, "deepsift.detect.arrow_scoring": _patch_score}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the patched modules through the other finders, then patches them once they have run."""

    def __init__(self) -> None:
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name not in PATCHES or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module) -> None:
            exec_module(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_and_patch
        return spec


if FAULTS and FAULTS_DIR:
    sys.meta_path.insert(0, _PatchAfterImport())
