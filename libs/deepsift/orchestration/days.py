"""Which day a nightly scan covers and where that day's uploads are.

A run's data interval must be one whole UTC day that has already ended; its start is the scan
date. Uploads for a day live in ``<source root>/<layout>``, the layout a ``strftime`` pattern
(default ``%Y-%m-%d``, so ``uploads/2026-11-25`` under a root ``uploads``). The DAG takes the source root and layout from
the run's params, else from the Airflow variables ``deepsift_source_root`` and
``deepsift_source_layout`` (settable as ``AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT`` in the environment; a
``DEEPSIFT_*`` variable would be read as a deepsift config key). The root is a local folder or a
``file:``, ``s3://``, ``gs://`` or ``hdfs://`` URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import PurePosixPath
from urllib.parse import urlparse

from deepsift.errors import DeepsiftError
from deepsift.media.sources import REMOTE_SCHEMES, is_local, local_path

SOURCE_ROOT_VARIABLE = "deepsift_source_root"
SOURCE_LAYOUT_VARIABLE = "deepsift_source_layout"
DEFAULT_LAYOUT = "%Y-%m-%d"


class ScanInputError(DeepsiftError, ValueError):
    """The scan date or the source folder is unusable; retrying the same run cannot help."""


@dataclass(frozen=True)
class UploadDay:
    """One day's uploads: the scan date, its folder (a local path or a URI) and how many files it holds."""

    scan_date: date
    folder: str
    files: int


def scan_date_for(start: datetime | None, end: datetime | None, now: datetime) -> date:
    """The scan date of a data interval: its start, when the interval is one whole UTC day that has ended.

    >>> scan_date_for(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), datetime.now(UTC))
    datetime.date(2026, 11, 24)
    """
    if start is None or end is None:
        raise ScanInputError("the run has no data interval: trigger it with a logical date")
    if start.tzinfo is None or end.tzinfo is None:
        raise ScanInputError(f"data interval {start} - {end} has no time zone")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start.time() != time(0) or end - start != timedelta(days=1):
        raise ScanInputError(f"data interval {start.isoformat()} - {end.isoformat()} is not one whole UTC day")
    if end > now:
        raise ScanInputError(
            f"scan date {start.date().isoformat()} is in the future or not over yet: its uploads are complete "
            f"at {end.isoformat()}, it is now {now.astimezone(UTC).isoformat(timespec='seconds')}"
        )
    return start.date()


def source_folder(scan_date: date, source_root: str | None, layout: str | None = None) -> str:
    """The folder (absolute path or URI) holding ``scan_date``'s uploads."""
    if not source_root:
        raise ScanInputError(
            f"no source root: set the Airflow variable {SOURCE_ROOT_VARIABLE} "
            f"(AIRFLOW_VAR_{SOURCE_ROOT_VARIABLE.upper()}) or the run's source_root param"
        )
    relative = _day_path(scan_date, layout or DEFAULT_LAYOUT)
    if is_local(source_root):
        return str(local_path(source_root).resolve() / relative)
    return f"{source_root.rstrip('/')}/{relative}"


def count_uploads(folder: str, scan_date: date) -> int:
    """Files in ``folder`` and below, hidden ones skipped as ingest skips them; a missing folder raises."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(_listable_uri(folder))
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise ScanInputError(f"source folder for {scan_date.isoformat()} does not exist: {folder}")
    if info.type != fs.FileType.Directory:
        raise ScanInputError(f"source path for {scan_date.isoformat()} is not a folder: {folder}")
    entries = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    return sum(
        1
        for entry in entries
        if entry.type == fs.FileType.File
        and not any(part.startswith(".") for part in PurePosixPath(entry.path).relative_to(path).parts)
    )


def resolve_upload_day(
    start: datetime | None,
    end: datetime | None,
    source_root: str | None = None,
    layout: str | None = None,
    now: datetime | None = None,
) -> UploadDay:
    """Validate a run's data interval and find its day's uploads (see the module docstring)."""
    scan_date = scan_date_for(start, end, now or datetime.now(UTC))
    folder = source_folder(scan_date, source_root, layout)
    return UploadDay(scan_date, folder, count_uploads(folder, scan_date))


def _day_path(scan_date: date, layout: str) -> str:
    """``scan_date`` formatted by ``layout``, refusing layouts that could map two days to one folder."""
    relative = scan_date.strftime(layout)
    probe = date(2001, 2, 3)
    neighbours = (date(2001, 2, 4), date(2001, 3, 3), date(2002, 2, 3))
    if any(probe.strftime(layout) == other.strftime(layout) for other in neighbours):
        raise ScanInputError(f"source layout {layout!r} must name the year, month and day (e.g. %Y-%m-%d or %Y/%m/%d)")
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or ".." in parts:
        raise ScanInputError(f"source layout {layout!r} must give a relative folder, gave {relative!r}")
    return relative


def _listable_uri(folder: str) -> str:
    if is_local(folder):
        return local_path(folder).resolve().as_uri()
    parsed = urlparse(folder)
    scheme = REMOTE_SCHEMES.get(parsed.scheme)
    if scheme is None:
        raise ScanInputError(f"cannot list {folder}: scheme {parsed.scheme!r} is not one of {sorted(REMOTE_SCHEMES)}")
    return f"{scheme}://{parsed.netloc}{parsed.path}"
