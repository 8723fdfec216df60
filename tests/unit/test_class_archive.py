"""The driver JVM's class-data archive: which options a JVM gets, and when an archive is published.

No JVM here: the options are checked as text, and a JVM's exit is played by writing the pending file
(the lifecycle tests run real commands that write and map an archive; the DAG tests' spark-submit
drivers map it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepsift.config import load_config
from deepsift.lake.class_archive import KEPT_ARCHIVES, ClassArchive, class_archive
from deepsift.lake.session import check_java, driver_class_archive, spark_conf, spark_jars, submitted_driver_conf

JAVA = Path("/usr/bin/true")
QUIET = "-XX:+IgnoreUnrecognizedVMOptions -Xlog:cds*=off"
"""The options that keep a JVM quiet about an archive it cannot use or write."""


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


def test_the_folder_keeps_only_the_archives_used_last(tmp_path):
    """Each new virtual environment writes a new archive of about 240 MB: the folder must not grow with them."""
    folder = tmp_path / "jvm"
    earlier = []
    for number in range(KEPT_ARCHIVES):
        jar = tmp_path / f"delta-{number}.jar"
        jar.write_bytes(b"x" * (number + 1))  # another jar set: another archive
        archive = _archive(folder, jar)
        archive.java_options()
        archive.pending.write_bytes(b"classes")
        archive.publish(jvm_exited_cleanly=True)
        os.utime(archive.path, (number, number))  # published in this order, long ago
        earlier.append(archive.path)
    assert _archive(folder, tmp_path / "delta-0.jar").java_options()[-1] == f"-XX:SharedArchiveFile={earlier[0]}"
    newest = _archive(folder)  # the oldest archive was just mapped; the second oldest is now used least recently
    newest.java_options()
    newest.pending.write_bytes(b"classes")
    newest.publish(jvm_exited_cleanly=True)
    assert sorted(folder.iterdir()) == sorted([newest.path, earlier[0], *earlier[2:]])


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


def test_a_driver_that_spark_submit_starts_maps_the_archive_a_command_wrote_and_never_writes_one(tmp_path, monkeypatch):
    """A DAG's job: its Python ends inside its JVM's lifetime, so nothing of ours could publish an archive
    that JVM wrote; the archive a ``deepsift`` command's JVM wrote on the same machine is mapped."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    config = load_config(environ={}, overrides={"home": str(tmp_path / "home")})
    for jar in spark_jars(config):  # the names and sizes of the jars count, not their content
        jar.parent.mkdir(parents=True, exist_ok=True)
        jar.write_bytes(b"jar")
    plain = spark_conf(config)["spark.driver.extraJavaOptions"]
    assert submitted_driver_conf(config)["spark.driver.extraJavaOptions"] == plain  # no archive: neither maps nor writes
    assert not (tmp_path / "user-cache").exists()

    command_archive = driver_class_archive(check_java(), spark_conf(config))
    assert command_archive.java_options()[-1] == f"-XX:ArchiveClassesAtExit={command_archive.pending}"
    command_archive.pending.write_bytes(b"classes")  # the command's JVM exits, its process publishes
    command_archive.publish(jvm_exited_cleanly=True)
    submitted = submitted_driver_conf(config)
    mapping = f"-XX:SharedArchiveFile={command_archive.path}"
    assert submitted == spark_conf(config) | {"spark.driver.extraJavaOptions": f"{plain} {QUIET} {mapping}"}
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))  # no java: nothing added, spark-submit says so
    assert submitted_driver_conf(config) == spark_conf(config)
