"""A class-data archive for the driver JVM: the classes a deepsift session loads, mapped from one file.

Every command's JVM loads and verifies the same tens of thousands of Spark, Delta and Hive classes,
which is most of the seconds before its first query and of its first Delta write. HotSpot (JDK 13 and
later) can write the classes a run loaded to an archive when it exits (``-XX:ArchiveClassesAtExit``)
and map that archive at the next start (``-XX:SharedArchiveFile``). An archive is valid only for the
JVM and class path that wrote it, so its file name carries a digest of both: another JDK, another
PySpark or another set of jars makes a new one, and a JVM that cannot use an archive (a stale or
damaged file, a JVM without the option) starts without it, silently.

The archive lives in the user's cache (``$XDG_CACHE_HOME/deepsift/jvm``, else ``~/.cache/deepsift/jvm``),
not in a deepsift home: every home on a machine runs the same JVM and jars. The first JVM to find no
archive writes one as it exits (about 10 s and 200 MB, once); while it runs, other JVMs neither map nor
write one. The archive is published under its final name only after that JVM exited by itself, so a
JVM killed midway leaves nothing half-written to be mapped.

Every new virtual environment or jar set writes a new archive, so the folder keeps only the
:data:`KEPT_ARCHIVES` mapped or written last (each about 240 MB); a JVM whose archive was removed
between its options and its start starts without one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from deepsift.files import keep_most_recently_used, mark_used, publish_or_discard

KEPT_ARCHIVES = 3
"""Archives the cache folder keeps, the most recently used: a few installs used in turn on one machine
each keep theirs, and the folder stays under a gigabyte however many installs came and went."""
ARCHIVE_PATTERN = "classes-*.jsa"
"""The names of published archives (a JVM's pending one ends in ``.tmp``)."""

QUIET_OPTIONS = ("-XX:+IgnoreUnrecognizedVMOptions", "-Xlog:cds*=off")
"""No JVM refuses to start over an option it lacks, and none prints the archive's warnings (the classes
it skips while writing, or why it cannot map a stale archive) on the user's console."""


@dataclass(frozen=True)
class ClassArchive:
    """The archive for one JVM and class path: where it lives and the JVM options that use or write it."""

    path: Path

    def java_options(self) -> list[str]:
        """Map the archive when it exists; else have this JVM write it, unless a running process's JVM is
        writing it already (then neither)."""
        if self.path.exists():
            return self.mapping_options()
        if self._being_written():
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return [*QUIET_OPTIONS, f"-XX:ArchiveClassesAtExit={self.pending}"]

    def mapping_options(self) -> list[str]:
        """Map the archive when it exists (marking it used), else nothing: for a JVM whose exit no process of
        ours outlives to publish an archive it wrote (a driver that ``spark-submit`` starts)."""
        if not self.path.exists():
            return []
        mark_used(self.path)
        return [*QUIET_OPTIONS, f"-XX:SharedArchiveFile={self.path}"]

    def _being_written(self) -> bool:
        """Whether another live process's JVM will write this archive; a dead writer's file is removed."""
        for pending in self.path.parent.glob(f"{self.path.name}.*.tmp"):
            pid = int(pending.name.rsplit(".", 2)[-2])
            if pid != os.getpid() and _alive(pid):
                return True
            pending.unlink(missing_ok=True)
        return False

    @property
    def pending(self) -> Path:
        """Where this process's JVM writes a new archive before it is published."""
        return self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")

    def publish(self, jvm_exited_cleanly: bool) -> None:
        """Give the archive this process's JVM wrote its final name, or drop it if the JVM did not exit cleanly;
        then remove the archives beyond :data:`KEPT_ARCHIVES` used least recently.

        A rename is atomic, so a JVM starting at the same moment maps either no archive or a whole one.
        """
        pending = self.pending
        if not pending.exists():
            return
        publish_or_discard(pending, self.path, publish=jvm_exited_cleanly and pending.stat().st_size > 0)
        keep_most_recently_used(self.path.parent, ARCHIVE_PATTERN, KEPT_ARCHIVES)


def user_cache_dir() -> Path:
    """Where archives are kept: ``$XDG_CACHE_HOME/deepsift/jvm``, else ``~/.cache/deepsift/jvm``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepsift" / "jvm"


def class_archive(folder: Path, java: Path, class_path: list[Path], added_jars: list[Path]) -> ClassArchive:
    """The archive in ``folder`` for the JVM at ``java`` with ``class_path`` (PySpark's jars) and the jars
    Spark adds to it at run time (``spark.jars``).

    The digest covers the JVM binary's real path and its library's size and time; each class path jar's
    real path, size and time; and each added jar's name and size. The real paths matter: HotSpot maps an
    archive over a class path moved elsewhere whole (another virtual environment), and classes of a sealed
    package would then come from two places (Derby's refuse to start). Added jars are loaded by Spark's own
    class loader, which takes an archived class only when its size and checksum match the jar's, so the
    same jars copied into another home share the archive.

    >>> import tempfile
    >>> archive = class_archive(Path(tempfile.mkdtemp()), Path("/usr/bin/true"), [], [])
    >>> archive.java_options()[-1].startswith("-XX:ArchiveClassesAtExit=")
    True
    >>> archive.pending.write_bytes(b"classes")
    7
    >>> archive.publish(jvm_exited_cleanly=True)
    >>> archive.java_options()[-1] == f"-XX:SharedArchiveFile={archive.path}"
    True
    """
    java = java.resolve()
    parts = [str(java), *_stamp(java), *_stamp(_jvm_library(java))]
    for jar in sorted(path.resolve() for path in class_path):
        parts += [str(jar), *_stamp(jar)]
    for jar in sorted(added_jars, key=lambda path: path.name):
        parts += [jar.name, _stamp(jar)[0]]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return ClassArchive(folder / f"classes-{digest}.jsa")


def _jvm_library(java: Path) -> Path:
    """The HotSpot library next to a ``bin/java`` (its base archive changes with it)."""
    return java.parent.parent / "lib" / "server" / "libjvm.so"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stamp(path: Path) -> list[str]:
    try:
        status = path.stat()
    except OSError:
        return ["absent"]
    return [str(status.st_size), str(status.st_mtime_ns)]
