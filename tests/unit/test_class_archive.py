"""The driver JVM's class-data archive: which options a JVM gets, and when an archive is published.

No JVM here: the options are checked as text, and a JVM's exit is played by writing the pending file
(the lifecycle tests run real commands that write and map an archive).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deepsift.lake.class_archive import ClassArchive, class_archive

JAVA = Path("/usr/bin/true")


def _archive(folder: Path, *added_jars: Path) -> ClassArchive:
    return class_archive(folder, JAVA, [], list(added_jars))


def test_the_archive_name_changes_with_the_jars_spark_adds(tmp_path):
    jar = tmp_path / "delta-spark.jar"
    jar.write_bytes(b"one")
    before = _archive(tmp_path / "jvm", jar).path
    assert _archive(tmp_path / "jvm", jar).path == before  # the same JVM and jars: the same archive
    copy = tmp_path / "another-home" / "delta-spark.jar"
    copy.parent.mkdir()
    copy.write_bytes(b"one")
    assert _archive(tmp_path / "jvm", copy).path == before  # the same jar in another home: shared
    jar.write_bytes(b"three")
    assert _archive(tmp_path / "jvm", jar).path != before
    assert _archive(tmp_path / "jvm").path != before


def test_a_class_path_moved_elsewhere_gets_an_archive_of_its_own(tmp_path):
    """HotSpot would map an archive over a class path moved whole; Derby's sealed packages then fail."""
    first, second = tmp_path / "venv-a" / "derby.jar", tmp_path / "venv-b" / "derby.jar"
    for jar in (first, second):
        jar.parent.mkdir()
        jar.write_bytes(b"derby")
    assert class_archive(tmp_path, JAVA, [first], []).path != class_archive(tmp_path, JAVA, [second], []).path


def test_a_jvm_writes_the_archive_that_is_missing_and_the_next_maps_it_once_published(tmp_path):
    archive = _archive(tmp_path / "jvm")
    writing = archive.java_options()
    assert writing[-1] == f"-XX:ArchiveClassesAtExit={archive.pending}"
    assert "-Xlog:cds*=off" in writing and "-XX:+IgnoreUnrecognizedVMOptions" in writing
    archive.pending.write_bytes(b"classes")  # what the JVM does as it exits
    archive.publish(jvm_exited_cleanly=True)
    assert not archive.pending.exists()
    assert archive.path.read_bytes() == b"classes"
    assert archive.java_options()[-1] == f"-XX:SharedArchiveFile={archive.path}"


def test_what_a_killed_or_failed_jvm_wrote_is_never_published(tmp_path):
    archive = _archive(tmp_path / "jvm")
    archive.java_options()
    archive.pending.write_bytes(b"half an archive")
    archive.publish(jvm_exited_cleanly=False)
    assert list(archive.path.parent.iterdir()) == []
    archive.publish(jvm_exited_cleanly=True)  # nothing pending: nothing to do
    assert list(archive.path.parent.iterdir()) == []


def test_while_a_live_process_writes_the_archive_other_jvms_neither_map_nor_write_it(tmp_path):
    archive = _archive(tmp_path / "jvm")
    archive.path.parent.mkdir(parents=True)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as writer:
        try:
            being_written = archive.path.with_name(f"{archive.path.name}.{writer.pid}.tmp")
            being_written.write_bytes(b"")
            assert archive.java_options() == []
        finally:
            writer.kill()
    # once that process is gone its file is stale: removed, and this JVM writes the archive instead
    assert archive.java_options()[-1] == f"-XX:ArchiveClassesAtExit={archive.pending}"
    assert not being_written.exists()
