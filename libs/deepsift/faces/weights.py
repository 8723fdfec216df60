"""Obtain the YuNet face-detector weights without trusting anything that was not verified.

Order: the configured ``faces.yunet_model_path``; a cached copy whose SHA-256 matches; a download
from the official source (when ``faces.allow_download``), verified and written atomically to the
cache. ``None`` when none of these works, so the caller can fall back to a detector that ships with
OpenCV and say so.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from deepsift.config import FacesConfig

logger = logging.getLogger(__name__)

OFFICIAL_COMMIT = "0047ac24afb1a50a0c6105001c89d1b5b805dbf1"
"""The libfacedetection.train commit the weights are pinned to (the short form ``0047ac24afb1``)."""
OFFICIAL_URL = (
    "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/"
    f"{OFFICIAL_COMMIT}/onnx/yunet_n_640_640.onnx"
)
OFFICIAL_SHA256 = "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31"
DOWNLOAD_TIMEOUT_S = 10.0
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024
"""The official file is 317 KB; anything much larger is not the file we want."""
_ALLOWED_SCHEMES = ("https", "http", "file")
"""``file`` lets an offline site point the download at a local mirror; the hash is checked all the same."""
_CHUNK_BYTES = 64 * 1024


def resolve_yunet_weights(
    cfg: FacesConfig,
    cache_dir: Path,
    url: str = OFFICIAL_URL,
    sha256: str = OFFICIAL_SHA256,
) -> Path | None:
    """Return a usable YuNet ONNX file, or ``None`` (with a logged warning saying why).

    A configured path is used as given (any YuNet version the user chose) and must exist. The cache
    and the download are held to ``sha256``; the cached file is named after that hash, so files for
    different expected hashes never overwrite each other.
    """
    if cfg.yunet_model_path is not None:
        configured = Path(cfg.yunet_model_path)
        if not configured.is_file():
            raise FileNotFoundError(
                f"config key faces.yunet_model_path points at {configured}, which is not a file"
            )
        return configured

    expected = sha256.lower()
    cached = cache_dir / "models" / f"yunet-{expected[:12]}.onnx"
    if cached.is_file():
        if file_sha256(cached) == expected:
            return cached
        logger.warning("ignoring cached YuNet weights %s: sha256 does not match %s", cached, expected)

    if not cfg.allow_download:
        logger.warning(
            "no YuNet weights: faces.yunet_model_path is unset, none are cached under %s, "
            "and faces.allow_download is false",
            cached.parent,
        )
        return None
    try:
        _download_verified(url, expected, cached)
    except (OSError, ValueError, http.client.HTTPException) as error:
        logger.warning("could not download YuNet weights from %s: %s", url, error)
        return None
    logger.info("downloaded YuNet weights from %s to %s", url, cached)
    return cached


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_verified(url: str, expected_sha256: str, target: Path) -> None:
    """Stream ``url`` into a temporary file beside ``target``, check size and hash, then rename.

    The rename is atomic, so concurrent workers sharing a cache never see a partial file.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _ALLOWED_SCHEMES:
        raise ValueError(f"URL scheme {scheme!r} is not one of {', '.join(_ALLOWED_SCHEMES)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    partial = Path(partial_name)
    try:
        with (
            os.fdopen(descriptor, "wb") as handle,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            digest = hashlib.sha256()
            received = 0
            while chunk := response.read(_CHUNK_BYTES):
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"more than {MAX_DOWNLOAD_BYTES} bytes; not a YuNet model")
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ValueError(f"sha256 {actual} does not match the expected {expected_sha256}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
