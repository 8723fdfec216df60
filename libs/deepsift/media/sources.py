"""Where video bytes come from: turning a URI into a local file that the decoder may open.

Local paths and ``file:`` URIs are read in place. Object-store and HDFS URIs (``s3://``, ``s3a://``,
``gs://``, ``hdfs://``) are copied to a temporary local file through ``pyarrow.fs`` first, because the
decoder is only ever allowed the local file protocol (an untrusted container must not make FFmpeg
open network URLs). Any other scheme is an ``unsupported_uri`` error for that video.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from deepsift.reasons import MediaError, Reason

REMOTE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "hdfs": "hdfs"}


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> Path:
    """The local path of a plain path or ``file:`` URI; anything else is ``unsupported_uri``."""
    parsed = urlparse(uri)
    if parsed.scheme == "":
        return Path(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    raise MediaError(Reason.UNSUPPORTED_URI, f"{uri} is not a local file")


def to_uri(path_or_uri: str) -> str:
    """Canonical form stored in ``videos.uri``: ``file:`` URIs for local files, others unchanged."""
    if is_local(path_or_uri):
        return local_path(path_or_uri).resolve().as_uri()
    return path_or_uri


@contextmanager
def opened_locally(uri: str) -> Iterator[Path]:
    """Yield a local path holding the bytes of ``uri``; a staged copy is deleted afterwards."""
    if is_local(uri):
        yield local_path(uri)
        return
    parsed = urlparse(uri)
    scheme = REMOTE_SCHEMES.get(parsed.scheme)
    if scheme is None:
        raise MediaError(Reason.UNSUPPORTED_URI, f"scheme {parsed.scheme!r} of {uri} is not readable")
    from pyarrow import fs

    with tempfile.TemporaryDirectory(prefix="deepsift-") as staging:
        staged = Path(staging) / f"video{Path(parsed.path).suffix}"
        try:
            filesystem, path = fs.FileSystem.from_uri(f"{scheme}://{parsed.netloc}{parsed.path}")
            with filesystem.open_input_stream(path) as source, staged.open("wb") as target:
                shutil.copyfileobj(source, target, length=1 << 20)
        except OSError as error:
            raise MediaError(Reason.UNSUPPORTED_URI, f"cannot read {uri}: {error}") from None
        yield staged
