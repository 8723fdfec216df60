"""ONNX graphs kept per model version, so that a scan's Python workers score without importing torch.

Exporting a version to ONNX needs torch and timm in the worker (seconds to import on a busy machine)
and about a second of export. A graph whose first batch matched torch's scores
(:class:`deepsift.detect.scoring.FaceScorer`) is therefore written once, and later workers and runs
load it with ONNX Runtime alone (:func:`deepsift.registry.version_files.scorer_from_files`).

Where: the user's cache (``$XDG_CACHE_HOME/deepsift/onnx``, else ``~/.cache/deepsift/onnx``), not the
home and not the registry. Executors do not know the driver's home (they get a version's files shipped
with their tasks), each executor host needs its own copy next to the worker anyway, and writing an artifact
into a registered, READY version from executors would need write access to the store and change what
the registry serves. A graph is derived data: losing it costs one export.

Which file: a digest of everything that makes the graph, the tracking and registry store, the model's
name and version, the digest of its weights file and its contract (so a version number reused after a
deletion cannot pick up another network's graph), the torch release that exported it and
:data:`~deepsift.detect.onnx_graph.EXPORT_OPSET`. The file holds the SHA-256 of the graph before the
graph itself: a file that is damaged (cut short, bits changed) fails that check or ONNX Runtime's load,
is said once and exported again. Files are published by rename (:func:`deepsift.files.replaced_on_success`),
so a reader sees a whole graph or none; the folder keeps the :data:`KEPT_GRAPHS` graphs used last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from deepsift.detect.onnx_graph import EXPORT_OPSET, OnnxExportError, OnnxGraph
from deepsift.files import file_sha256, keep_most_recently_used, mark_used, replaced_on_success

log = logging.getLogger(__name__)

KEPT_GRAPHS = 32
"""Graphs the cache folder keeps, the most recently used; older ones are removed when one is added."""
_DIGEST_BYTES = 64
"""The hex SHA-256 of the graph that starts each cache file."""


def graph_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/deepsift/onnx``, else ``~/.cache/deepsift/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepsift" / "onnx"


@dataclass(frozen=True)
class VersionFiles:
    """What identifies one model version's network: where it is registered and the files it was loaded from."""

    tracking_uri: str
    registry_uri: str
    model_name: str
    version: int
    state_dict: Path
    contract: Path

    def identity(self) -> dict[str, str]:
        """The fields the cache key is a digest of (file contents, not their temporary paths)."""
        return {
            "tracking_uri": self.tracking_uri,
            "registry_uri": self.registry_uri,
            "model": f"{self.model_name}/{self.version}",
            "weights_sha256": file_sha256(self.state_dict),
            "contract": self.contract.read_text(encoding="utf-8"),
            "torch": metadata.version("torch"),
            "opset": str(EXPORT_OPSET),
        }


@dataclass(frozen=True)
class GraphCache:
    """The cache file of one version's checked graph.

    >>> import tempfile
    >>> import numpy as np
    >>> from deepsift.detect.architectures import build_detector_network
    >>> cache = GraphCache(Path(tempfile.mkdtemp()) / "detector-v1-0123456789abcdef.onnx")
    >>> cache.load(threads=1) is None
    True
    >>> cache.keep(OnnxGraph.export(build_detector_network("mobilenetv3_small_050"), input_size=64, threads=1))
    >>> cache.load(threads=1).logits(np.zeros((1, 3, 64, 64), np.float32)).shape
    (1, 1)
    """

    path: Path

    @classmethod
    def for_version(cls, files: VersionFiles, root: Path | None = None) -> GraphCache:
        """The cache file for ``files`` under ``root`` (default :func:`graph_cache_dir`)."""
        key = hashlib.sha256(json.dumps(files.identity(), sort_keys=True).encode()).hexdigest()[:32]
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", files.model_name)
        return cls((root or graph_cache_dir()) / f"{name}-v{files.version}-{key}.onnx")

    def load(self, threads: int) -> OnnxGraph | None:
        """The cached graph on ONNX Runtime with ``threads`` threads; None when there is none, or when the
        file is damaged (said once: the caller exports it again)."""
        try:
            stored = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("cannot read the cached ONNX graph %s (%s); exporting it again", self.path, error.strerror)
            return None
        digest, model = stored[:_DIGEST_BYTES], stored[_DIGEST_BYTES:]
        try:
            if hashlib.sha256(model).hexdigest().encode() != digest:
                raise OnnxExportError("its checksum does not match its contents")
            graph = OnnxGraph(model, threads)
        except OnnxExportError as error:
            log.warning("the cached ONNX graph %s is damaged (%s); exporting it again", self.path, error)
            return None
        mark_used(self.path)
        return graph

    def keep(self, graph: OnnxGraph) -> None:
        """Publish ``graph`` as this version's cached graph, then drop the least recently used beyond
        :data:`KEPT_GRAPHS`. A cache that cannot be written costs the next worker an export, nothing more."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with replaced_on_success(self.path) as partial:
                partial.write_bytes(hashlib.sha256(graph.model).hexdigest().encode() + graph.model)
        except OSError as error:
            log.warning("cannot cache the ONNX graph in %s (%s); each worker exports it", self.path.parent, error)
            return
        keep_most_recently_used(self.path.parent, "*.onnx", KEPT_GRAPHS)

