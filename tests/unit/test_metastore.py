"""Turn-taking on the embedded metastore with real processes and real locks: a command waits for a
holder that lets go, names one that does not, and takes over at once from one that died."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepsift.config import load_config
from deepsift.lake.metastore import MetastoreLockedError, hold_metastore, lock_holder

DERBY_HOLDER = (
    "import fcntl, os, sys, time\n"
    "handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "fcntl.lockf(handle, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)
"""Holds Derby's lock the way a JVM that booted the database does (a POSIX lock on dbex.lck)."""
DEEPSIFT_HOLDER = (
    "import sys, time\n"
    "from deepsift.config import load_config\n"
    "from deepsift.lake.metastore import hold_metastore\n"
    "lease = hold_metastore(load_config(environ={}, overrides={'home': sys.argv[1]}))\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)
"""Another deepsift process holding its turn, as a command does from before its JVM starts."""


def _config(home: Path, wait_s: float):
    return load_config(environ={}, overrides={"home": str(home), "lake.metastore_wait_s": wait_s})


def _start(code: str, *args: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_jvm_that_is_stopping_is_waited_for_and_the_wait_is_shown(tmp_path, caplog):
    derby = tmp_path / "metastore" / "metastore_db" / "dbex.lck"
    derby.parent.mkdir(parents=True)
    holder = _start(DERBY_HOLDER, str(derby), "2")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="deepsift.lake.metastore"):
        lease = hold_metastore(_config(tmp_path, 60))
    waited = time.monotonic() - started
    try:
        assert holder.wait(timeout=10) == 0  # it had let go by exiting: the wait outlasted it
        assert 1.0 < waited < 30
        [record] = caplog.records
        assert record.getMessage().startswith(
            f"the metastore is in use by pid {holder.pid}: {sys.executable} -c import fcntl, os, sys, time"
        )
        assert record.getMessage().endswith("s for it (lake.metastore_wait_s)")
        assert lock_holder(tmp_path / "metastore" / "owner.lock") is None  # this process holds it, no other
    finally:
        lease.release()


def test_a_holder_that_keeps_it_is_named_and_one_that_dies_hands_over_at_once(tmp_path):
    holder = _start(DEEPSIFT_HOLDER, str(tmp_path))
    try:
        started = time.monotonic()
        with pytest.raises(MetastoreLockedError) as refused:
            hold_metastore(_config(tmp_path, 1))
        assert 1.0 <= time.monotonic() - started < 10
        message = str(refused.value)
        assert message.startswith(
            f"the metastore {tmp_path / 'metastore' / 'metastore_db'} is in use by another process "
            f"(pid {holder.pid}: {sys.executable} -c import sys, time from deepsift.config import load_config"
        )
        assert "still after 1 s (lake.metastore_wait_s)" in message
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    with hold_metastore(_config(tmp_path, 60)):
        assert time.monotonic() - started < 1.0  # the kernel dropped a dead owner's lock: no wait


def test_a_turn_is_held_until_released(tmp_path):
    lease = hold_metastore(_config(tmp_path, 60))
    waiting = subprocess.run(
        [sys.executable, "-c",
         (
             "import sys\n"
             "from deepsift.config import load_config\n"
             "from deepsift.lake.metastore import MetastoreLockedError, hold_metastore\n"
             "try:\n"
             "    hold_metastore(load_config(environ={}, overrides={'home': sys.argv[1], 'lake.metastore_wait_s': 0.5}))\n"
             "except MetastoreLockedError as error:\n"
             "    print(error)\n"
         ),
         str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert f"is in use by another process (pid {os.getpid()}: " in waiting.stdout
    lease.release()
    again = subprocess.run(waiting.args, check=False, capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout) == (0, "")
