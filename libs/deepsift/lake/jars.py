"""The Delta Lake jars: fetched once from a Maven repository, checked, and cached for offline runs.

Spark's own ``spark.jars.packages`` resolution goes through Ivy on every start and the artifact name
that ``delta-spark``'s pip helper derives does not exist on Maven Central for every release, so
deepsift pins the two jars it needs, downloads them once with their SHA-1 checked against the
repository's ``.sha1`` files, and hands Spark plain local paths (``spark.jars``).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from pathlib import Path

from deepsift.errors import DeepsiftError
from deepsift.files import replaced_on_success

log = logging.getLogger(__name__)

DELTA_VERSION = "4.4.0"
"""The Delta jar release for Spark 4.2 / Scala 2.13 (the Python ``delta-spark`` 4.4.x API matches it)."""
DELTA_ARTIFACTS = (
    ("io.delta", "delta-spark_2.13", DELTA_VERSION),
    ("io.delta", "delta-storage", DELTA_VERSION),
)
DEFAULT_MAVEN_REPO = "https://repo1.maven.org/maven2"


class JarDownloadError(DeepsiftError, RuntimeError):
    """A Delta jar is not cached and could not be downloaded (offline, or a bad mirror)."""


def ensure_delta_jars(cache_dir: Path, maven_repo: str = DEFAULT_MAVEN_REPO) -> list[Path]:
    """Return local paths of the Delta jars, downloading any that are not cached yet.

    For example (the first call downloads)::

        ensure_delta_jars(Path(".deepsift/cache/jars"))
        # [PosixPath('.../delta-spark_2.13-4.4.0.jar'), PosixPath('.../delta-storage-4.4.0.jar')]
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    return [
        _ensure_jar(target, maven_repo.rstrip("/"), *artifact)
        for target, artifact in zip(delta_jar_paths(cache_dir), DELTA_ARTIFACTS, strict=True)
    ]


def delta_jar_paths(cache_dir: Path) -> list[Path]:
    """Where :func:`ensure_delta_jars` caches the Delta jars in ``cache_dir``; checks nothing, fetches nothing.

    >>> [path.name for path in delta_jar_paths(Path("jars"))]
    ['delta-spark_2.13-4.4.0.jar', 'delta-storage-4.4.0.jar']
    """
    return [cache_dir / f"{artifact}-{version}.jar" for _, artifact, version in DELTA_ARTIFACTS]


def _ensure_jar(target: Path, repo: str, group: str, artifact: str, version: str) -> Path:
    cache_dir = target.parent
    if target.exists():
        return target
    url = f"{repo}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
    log.info("downloading %s", url)
    try:
        expected_sha1 = _fetch(url + ".sha1").decode().split()[0].strip().lower()
        content = _fetch(url)
    except OSError as error:
        raise JarDownloadError(
            f"cannot download {url}: {error}. deepsift needs the Delta jars once; run with network "
            f"access, or place {target.name} in {cache_dir}"
        ) from None
    actual_sha1 = hashlib.sha1(content).hexdigest()
    if actual_sha1 != expected_sha1:
        raise JarDownloadError(f"{url}: SHA-1 {actual_sha1} does not match the repository's {expected_sha1}")
    with replaced_on_success(target) as partial:
        partial.write_bytes(content)
    return target


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # fixed https/file repository URL
        return response.read()
