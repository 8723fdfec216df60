"""IsolatedWorker: crashes, hangs and memory blow-ups become typed errors, and the next call works."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from deepsift.config import DecodeLimits, SamplingConfig
from deepsift.media.isolation import IsolatedWorker, WorkerStartError, threads_that_fit
from deepsift.media.sampling import SampleResult
from deepsift.reasons import MediaError, Reason

UNIT_DIR = Path(__file__).resolve().parent
TIMEOUT_S = 3.0
LIMITS = DecodeLimits(timeout_s=TIMEOUT_S, memory_mb=256)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[IsolatedWorker]:
    """A worker that can import ``isolation_targets`` (it inherits sys.path when it starts)."""
    monkeypatch.syspath_prepend(str(UNIT_DIR))
    with IsolatedWorker(LIMITS) as isolated:
        yield isolated


def _assert_recovers(worker: IsolatedWorker, dead_pid: int) -> None:
    assert worker.call("isolation_targets:echo", "again") == "again"
    assert worker.pid is not None and worker.pid != dead_pid


def test_call_returns_result_from_one_warm_process(worker: IsolatedWorker) -> None:
    assert worker.call("isolation_targets:echo", {"a": [1, 2]}) == {"a": [1, 2]}
    first = worker.call("isolation_targets:worker_pid")
    assert first != os.getpid()
    assert worker.call("isolation_targets:worker_pid") == first == worker.pid


def test_segfault_is_decode_error_and_worker_restarts(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:segfault")
    assert caught.value.reason is Reason.DECODE_ERROR
    assert "SIGSEGV" in caught.value.detail
    assert time.monotonic() - started < TIMEOUT_S
    _assert_recovers(worker, pid)


def test_hang_is_timeout_within_the_limit_and_worker_restarts(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:sleep", 60)
    elapsed = time.monotonic() - started
    assert caught.value.reason is Reason.TIMEOUT
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 2.0
    _assert_recovers(worker, pid)


def test_memory_blowup_is_resource_limit_and_worker_restarts(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:allocate", 16 * 1024)
    assert caught.value.reason is Reason.RESOURCE_LIMIT
    assert time.monotonic() - started < TIMEOUT_S
    _assert_recovers(worker, pid)


def test_allocation_within_budget_succeeds(worker: IsolatedWorker) -> None:
    assert worker.call("isolation_targets:allocate", 128) == 2


def test_external_sigkill_is_resource_limit(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:kill_self")
    assert caught.value.reason is Reason.RESOURCE_LIMIT
    _assert_recovers(worker, pid)


def test_media_error_passes_through_with_its_reason(worker: IsolatedWorker) -> None:
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:raise_media_error")
    assert caught.value.reason is Reason.NO_VIDEO_STREAM
    assert caught.value.detail == "raised inside the worker"


def test_other_exceptions_become_decode_error_without_restart(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    with pytest.raises(MediaError) as caught:
        worker.call("isolation_targets:raise_value_error")
    assert caught.value.reason is Reason.DECODE_ERROR
    assert caught.value.detail == "ValueError: boom"
    with pytest.raises(MediaError, match="result not sendable"):
        worker.call("isolation_targets:unpicklable")
    assert worker.call("isolation_targets:worker_pid") == pid


def test_unknown_target_is_a_programming_error(worker: IsolatedWorker) -> None:
    with pytest.raises(ValueError, match="no attribute"):
        worker.call("isolation_targets:does_not_exist")
    with pytest.raises(ValueError, match=r"package\.module:function"):
        worker.call("isolation_targets.echo")


def test_initializer_state_is_built_once_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(UNIT_DIR))
    with IsolatedWorker(LIMITS, initializer="isolation_targets:make_state") as worker:
        assert worker.call("isolation_targets:count_calls") == (1, worker.pid)
        assert worker.call("isolation_targets:count_calls") == (2, worker.pid)


def test_failing_initializer_raises_start_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(UNIT_DIR))
    with (
        IsolatedWorker(LIMITS, initializer="isolation_targets:raise_value_error") as worker,
        pytest.raises(WorkerStartError, match="ValueError: boom"),
    ):
        worker.call("isolation_targets:echo", 1)


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


def test_interrupted_call_never_hands_its_late_reply_to_the_next_call(worker: IsolatedWorker) -> None:
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(_Interrupted):
            worker.call("isolation_targets:sleep", 1.0, "late reply")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(1.0)
    assert worker.call("isolation_targets:echo", "fresh") == "fresh"


def test_call_overhead_is_well_under_a_millisecond(worker: IsolatedWorker) -> None:
    worker.call("isolation_targets:echo", 0)
    n_calls = 300
    started = time.perf_counter()
    for i in range(n_calls):
        worker.call("isolation_targets:echo", i)
    assert (time.perf_counter() - started) / n_calls < 0.001


def test_close_stops_the_worker(worker: IsolatedWorker) -> None:
    pid = worker.call("isolation_targets:worker_pid")
    worker.close()
    assert worker.pid is None
    assert not _alive(pid)


def test_sample_frames_runs_in_the_worker(worker: IsolatedWorker, media_dir: Path) -> None:
    path = media_dir / "edge" / "h264_aac_640x360_25fps_3s.mp4"
    result = worker.call(
        "deepsift.media.sampling:sample_frames", path, SamplingConfig(frames_per_video=8), DecodeLimits()
    )
    assert isinstance(result, SampleResult)
    assert [frame.image.shape for frame in result.frames] == [(360, 640, 3)] * 8


@pytest.mark.parametrize(
    "clip", ["edge/h264_aac_640x360_25fps_3s.mp4", "edge/hevc_720p_30fps_2s.mp4", "edge/portrait_1080x1920.mp4"]
)
def test_decoder_threads_beyond_the_memory_limit_are_capped_to_what_fits(
    worker: IsolatedWorker, media_dir: Path, clip: str
) -> None:
    """64 decoder threads would reserve 512 MB of stacks (at 8 MB each) and a frame buffer or more each,
    twice the 256 MB budget and more: the worker asks FFmpeg for no more than half its remaining budget
    holds, so no thread pool is cut short at its start or runs out of memory decoding, every time."""
    path = media_dir / clip
    for _ in range(3):
        result = worker.call(
            "deepsift.media.sampling:sample_frames", path, SamplingConfig(frames_per_video=4), LIMITS, decoder_threads=64
        )
        assert len(result.frames) == 4


def test_threads_fit_half_of_what_the_worker_may_still_map(worker: IsolatedWorker) -> None:
    """Each thread is charged its stack and its working bytes; never fewer than one, and no cap without a limit."""
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    stack = 8 << 20 if stack == resource.RLIM_INFINITY or stack <= 0 else stack  # the worker inherits it
    per_thread = stack + (4 << 20)
    half_the_budget = (LIMITS.memory_mb << 20) // 2 // per_thread
    fitting = worker.call("deepsift.media.isolation:threads_that_fit", 64, 4 << 20)
    assert half_the_budget - 2 <= fitting <= half_the_budget  # the worker maps a few MB of the budget itself
    assert worker.call("deepsift.media.isolation:threads_that_fit", 64, 1 << 30) == 1  # at least one
    assert threads_that_fit(64, 1 << 30) == 64  # this process has no address-space limit


def test_worker_dies_with_its_parent(tmp_path: Path) -> None:
    """The parent is SIGKILLed while its worker is busy: nothing may be left running."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        sys.path.insert(0, {str(UNIT_DIR)!r})
        from deepsift.config import DecodeLimits
        from deepsift.media.isolation import IsolatedWorker
        worker = IsolatedWorker(DecodeLimits(timeout_s=60))
        print(worker.call("isolation_targets:worker_pid"), flush=True)
        threading.Thread(target=worker.call, args=("isolation_targets:sleep", 60), daemon=True).start()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    worker_pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 5.0
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid)


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie waiting for its reaper counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
