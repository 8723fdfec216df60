"""Headless Chromium (Debian's ``chromium``) for tests that look at pages the way a browser shows them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with ``args`` and its own throwaway profile; fail the test if it fails."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("these tests need Chromium: apt-get install chromium (see infra/check_prereqs.sh chromium)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses its sandbox to root
    with tempfile.TemporaryDirectory(prefix="test-chromium-") as profile:
        return subprocess.run(
            [binary, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={profile}", *sandbox, *args],
            capture_output=True, text=True, timeout=120, check=True,
        )
