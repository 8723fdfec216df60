"""Local file helpers every part of deepsift shares: a file's SHA-256, writing a file whole or not at all, and
keeping a cache folder to the files used last.

Readers of a cached or published file (a downloaded jar, a compiled extension, a report, cached crops,
a demo clip, a JVM class archive) must never see it half-written, even when the writer is killed or
another process writes the same file at the same moment. Every such file is therefore written under a
temporary name beside its final one and renamed into place, which is atomic within a file system.

Caches in the user's cache folder (ONNX graphs, JVM class archives) get a new file whenever what they
derive from changes (another model version, another virtual environment), so each keeps only the files
used last: a file is marked used by its modification time, and the oldest beyond a count are removed.
"""

from __future__ import annotations

import contextlib
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


def mark_used(path: Path) -> None:
    """Set ``path``'s modification time to now, so that :func:`keep_most_recently_used` keeps it."""
    with contextlib.suppress(OSError):  # read-only or removed meanwhile: only the pruning order suffers
        os.utime(path)


def keep_most_recently_used(folder: Path, pattern: str, kept: int) -> None:
    """Remove all but the ``kept`` files matching ``pattern`` in ``folder`` modified last.

    Another process may prune the same folder at the same moment, and a file being removed may still be
    open or mapped by a reader, which keeps its contents until it closes it (POSIX unlink).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for seconds, name in [(2000, "recent.bin"), (1000, "older.bin"), (0, "oldest.bin")]:
    ...     (folder / name).touch()
    ...     os.utime(folder / name, (seconds, seconds))
    >>> mark_used(folder / "oldest.bin")
    >>> keep_most_recently_used(folder, "*.bin", kept=2)
    >>> sorted(path.name for path in folder.iterdir())
    ['oldest.bin', 'recent.bin']
    """
    files: list[tuple[float, Path]] = []
    for path in folder.glob(pattern):
        try:
            files.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    for _, path in sorted(files, reverse=True)[kept:]:
        path.unlink(missing_ok=True)
