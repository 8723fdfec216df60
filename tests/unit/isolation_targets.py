"""Targets that test_media_isolation.py runs inside an IsolatedWorker (imported there by module name)."""

from __future__ import annotations

import os
import signal
import threading
import time

from deepsift.reasons import MediaError, Reason


def echo(value: object) -> object:
    return value


def worker_pid() -> int:
    return os.getpid()


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def kill_self() -> None:
    """What the kernel's OOM killer does."""
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def allocate(total_mb: int, chunk_mb: int = 64) -> int:
    """Grow memory chunk by chunk, touching every page, the way a runaway decoder does."""
    chunks = []
    for _ in range(total_mb // chunk_mb):
        chunks.append(bytearray(chunk_mb << 20))
    return len(chunks)


def raise_media_error() -> None:
    raise MediaError(Reason.NO_VIDEO_STREAM, "raised inside the worker")


def raise_value_error() -> None:
    raise ValueError("boom")


def unpicklable() -> object:
    return threading.Lock()


class Counter:
    """State built once per worker by the initializer."""

    def __init__(self) -> None:
        self.loaded_in = os.getpid()
        self.calls = 0


def make_state() -> Counter:
    return Counter()


def count_calls(state: Counter) -> tuple[int, int]:
    state.calls += 1
    return state.calls, state.loaded_in
