"""Deliberately failing extraction targets, run inside the isolated decode worker by the fault tests.

A file whose name contains ``crash`` kills the worker with SIGSEGV, as a bug inside FFmpeg would; one
containing ``hang`` never returns. Every other file goes through the real extraction.
"""

from __future__ import annotations

import os
import signal
import time

from deepsift.faces.extraction import extract_video


def crash_or_hang(state, path: str, *args, **kwargs):
    name = os.path.basename(path)
    if "crash" in name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in name:
        time.sleep(3600)
    return extract_video(state, path, *args, **kwargs)
