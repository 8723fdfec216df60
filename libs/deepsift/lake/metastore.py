"""Turn-taking on the embedded Derby metastore, which admits one JVM at a time.

A deepsift process takes ``owner.lock`` beside ``metastore_db`` (an ``flock``) before it starts a JVM
over the metastore and keeps it until that JVM has exited; then it waits until no JVM holds Derby's own
lock, ``metastore_db/dbex.lck`` (a JVM whose command was killed still holds it while it stops). So two
commands started at the same moment queue instead of one failing deep in Hive, and a command started
right after another waits the seconds the other's JVM needs to exit. A holder that does not let go
within ``lake.metastore_wait_s`` is named, pid and command line, in :class:`MetastoreLockedError`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from deepsift.config import Config
from deepsift.errors import DeepsiftError

logger = logging.getLogger(__name__)

OWNER_LOCK = "owner.lock"
"""The file, in the metastore folder, whose ``flock`` a deepsift process holds while its JVM may use Derby."""
POLL_S = 0.2
_NOBODY_YET = object()
COMMAND_CHARS = 160
"""A holder's command line is cut to this many characters in messages (a JVM's runs to kilobytes)."""


class MetastoreLockedError(DeepsiftError, RuntimeError):
    """Another process kept the embedded Derby metastore for longer than ``lake.metastore_wait_s``."""


@dataclass(frozen=True)
class LockHolder:
    """A process holding a lock, as ``/proc/locks`` and ``/proc/<pid>/cmdline`` tell."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.command}"


class MetastoreLease:
    """This process's turn on the embedded metastore, until :meth:`release` or the process ends."""

    def __init__(self, handle: int | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the descriptor drops the flock
            self._handle = None

    def __enter__(self) -> MetastoreLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def uses_embedded_metastore(config: Config) -> bool:
    """False when ``spark.extra_conf`` points the catalog at another database or a metastore service."""
    elsewhere = ("spark.hadoop.javax.jdo.option.ConnectionURL", "spark.hadoop.hive.metastore.uris")
    return not any(key in config.spark.extra_conf for key in elsewhere)


def hold_metastore(config: Config) -> MetastoreLease:
    """Wait for this home's embedded metastore to be free, then hold it for this process.

    While another process holds it, one warning per holder says who and for how long this command will
    wait; past ``lake.metastore_wait_s`` it raises :class:`MetastoreLockedError` naming the holder.
    """
    if not uses_embedded_metastore(config):
        return MetastoreLease(None)
    config.metastore_dir.mkdir(parents=True, exist_ok=True)
    owner = config.metastore_dir / OWNER_LOCK
    derby = config.metastore_dir / "metastore_db" / "dbex.lck"
    handle = os.open(owner, os.O_RDWR | os.O_CREAT, 0o644)
    wait_s = config.lake.metastore_wait_s
    deadline = time.monotonic() + wait_s
    announced: object = _NOBODY_YET
    try:
        while not _take(handle, derby):
            holder = lock_holder(owner) or lock_holder(derby)
            if time.monotonic() >= deadline:
                raise MetastoreLockedError(
                    f"the metastore {derby.parent} is in use by another process "
                    f"({holder or 'its pid is unknown'}), still after {wait_s:.0f} s (lake.metastore_wait_s): "
                    "embedded Derby admits one JVM at a time (a scan, a Spark job, `deepsift sql` or "
                    "`deepsift sql-server`); wait for it or stop it, or configure a metastore service for "
                    "concurrent use"
                )
            if holder != announced:
                logger.warning(
                    "the metastore is in use by %s; waiting up to %.0f s for it (lake.metastore_wait_s)",
                    holder or "another process", max(0.0, deadline - time.monotonic()),
                )
                announced = holder
            time.sleep(POLL_S)
    except BaseException:
        os.close(handle)
        raise
    return MetastoreLease(handle)


def _take(handle: int, derby: Path) -> bool:
    """Hold ``owner.lock`` (kept once held) and tell whether Derby's lock is free as well."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return not derby_locked(derby)


def derby_locked(lock_file: Path) -> bool:
    """Whether a JVM that booted the Derby database holds its POSIX lock on ``dbex.lck``.

    Trying the same lock tells; it is given back at once (closing the descriptor releases it).
    """
    try:
        handle = os.open(lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(handle)
    return False


def lock_holder(path: Path) -> LockHolder | None:
    """The process, other than this one, holding a lock on ``path``; None when none is, or where the
    system has no ``/proc/locks`` to tell."""
    try:
        stat = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or "->" in fields:  # "->": a process waiting for the lock, not holding it
            continue
        pid, (major, minor, inode) = int(fields[4]), fields[5].split(":")
        if (
            pid > 0 and pid != os.getpid() and int(inode) == stat.st_ino
            and (int(major, 16), int(minor, 16)) == (os.major(stat.st_dev), os.minor(stat.st_dev))
        ):
            return LockHolder(pid, _command_line(pid))
    return None


def _command_line(pid: int) -> str:
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "command unknown"
    command = " ".join(" ".join(argument.decode(errors="replace").split()) for argument in arguments)
    return command if len(command) <= COMMAND_CHARS else command[: COMMAND_CHARS - 3] + "..."
