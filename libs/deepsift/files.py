"""Local file helpers every part of deepsift shares: a file's SHA-256, and writing a file whole or not at all.

Readers of a cached or published file (a downloaded jar, a compiled extension, a report, cached crops,
a demo clip, a JVM class archive) must never see it half-written, even when the writer is killed or
another process writes the same file at the same moment. Every such file is therefore written under a
temporary name beside its final one and renamed into place, which is atomic within a file system.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, streamed so that memory stays flat whatever the file's size.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as handle:
    ...     _ = handle.write(b"abc") and handle.flush()
    ...     file_sha256(handle.name)[:16]
    'ba7816bf8f01cfea'
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _partial_path(target: Path) -> Path:
    """A hidden name beside ``target`` for this process's copy in progress; the suffix is kept, so that
    writers that pick a format from it (an MP4 muxer, NumPy's ``.npz``) write the right one."""
    return target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")


def publish_or_discard(partial: Path, target: Path, *, publish: bool) -> None:
    """Rename ``partial`` onto ``target`` in one atomic step when ``publish``, else remove it.

    A reader then sees the old ``target`` (or none) or the whole new one, never part of it.
    """
    if publish:
        partial.replace(target)
    else:
        partial.unlink(missing_ok=True)


@contextmanager
def replaced_on_success(target: Path, partial: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (a hidden name that keeps its suffix, unless ``partial`` is given) to
    write; rename it onto ``target`` when the block ends normally, remove it when the block raises.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "report.html"
    >>> with replaced_on_success(target) as partial:
    ...     _ = partial.write_text("<p>done</p>")
    >>> target.read_text(), sorted(path.name for path in target.parent.iterdir())
    ('<p>done</p>', ['report.html'])
    """
    partial = _partial_path(target) if partial is None else partial
    try:
        yield partial
    except BaseException:
        publish_or_discard(partial, target, publish=False)
        raise
    publish_or_discard(partial, target, publish=True)
