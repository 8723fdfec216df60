"""A `deepsift` server command (sql-server, mlflow-ui) run by a test the way a shell runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STOP_TIMEOUT_S = 90


@contextmanager
def deepsift_server(args: list[str], env: dict[str, str], log: Path, ready_timeout_s: float) -> Iterator[subprocess.Popen]:
    """Run ``deepsift *args`` in its own process group with its output in ``log``; yield it once it prints
    ``ready:`` (failing with the log if it does not). On the way out, a command still running gets SIGTERM,
    then its whole group (the command and the server it started) SIGKILL after :data:`STOP_TIMEOUT_S`."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deepsift.cli", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while "ready:" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert "ready:" in log.read_text(), f"the server did not start (exit {process.poll()}):\n{log.read_text()[-4000:]}"
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
