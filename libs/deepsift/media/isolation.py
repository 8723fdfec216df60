"""Run media code in a warm, disposable worker process, so that hostile input cannot hurt the caller.

FFmpeg parses untrusted uploads. A segfault, an endless loop or a memory blow-up inside it must end
as a typed error row for that one video, never as a dead Spark task. :class:`IsolatedWorker` keeps
one worker process (a fresh interpreter started with ``subprocess``, so the caller's ``__main__`` is
never re-imported) and sends it calls over a pipe:

* a call that runs past ``timeout_s`` gets the worker killed: ``MediaError(timeout)``;
* a worker that dies from a signal or exits gives ``MediaError(decode_error)``, except SIGKILL from
  outside (the kernel's OOM killer), which, like a ``MemoryError``, gives ``resource_limit``;
* the worker's address space is capped with ``RLIMIT_AS`` at ``memory_mb`` above what the
  interpreter, the initializer's state and the target's modules already map (measured in the
  worker, since it depends on the libraries and the machine);
* the next call after any of these starts a fresh worker.

The worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and end-of-file on the pipe), so no
orphan is left behind. ``PR_SET_PDEATHSIG`` ties the worker to the thread that started it: use one
worker per thread; a worker whose thread ended is replaced on the next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from deepsift.config import DecodeLimits
from deepsift.reasons import MediaError, Reason

_STARTUP_TIMEOUT_S = 120.0
"""Time allowed for the interpreter to start and the initializer to run."""
_CLOSE_TIMEOUT_S = 2.0
_PR_SET_PDEATHSIG = 1
_MALLOC_ARENAS = "2"
"""glibc reserves 64 MiB of address space per malloc arena, up to 8 per core; FFmpeg's decoder
threads would spend much of the ``RLIMIT_AS`` budget on reservations without this cap."""


class WorkerStartError(RuntimeError):
    """The worker could not start or its initializer failed: a deployment problem, not a media one."""


class IsolatedWorker:
    """A warm worker process that runs ``"package.module:function"`` targets under ``limits``.

    For example::

        with IsolatedWorker(limits) as worker:
            result = worker.call("deepsift.media.sampling:sample_frames", path, sampling, limits)
    """

    def __init__(self, limits: DecodeLimits, initializer: str | None = None, init_args: tuple[Any, ...] = ()) -> None:
        self.limits = limits
        self.initializer = initializer
        self.init_args = init_args
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The worker's process id while one is running."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def call(self, target: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``target(*args, **kwargs)`` (``target(state, ...)`` with an initializer) in the worker.

        Returns the target's picklable result. Raises :class:`MediaError` for timeouts, crashes,
        memory exhaustion and any exception the target raised; raises ``ValueError`` for a target
        that cannot be found, which is a programming error rather than a property of the media.
        """
        _split_target(target)
        with self._lock:
            try:
                kind, *detail = self._exchange(target, args, kwargs)
            except BaseException:
                self._kill()  # the pipe may hold half an exchange: never reuse it
                raise
            if kind == "memory" or (kind == "media" and detail[0] == Reason.RESOURCE_LIMIT.value):
                self._kill()  # a worker that ran short of memory may be fragmented: start the next call afresh
        if kind == "ok":
            return detail[0]
        if kind == "media":
            raise MediaError(Reason(detail[0]), detail[1])
        if kind == "memory":
            raise MediaError(Reason.RESOURCE_LIMIT, f"out of memory (memory_mb {self.limits.memory_mb}): {detail[0]}")
        if kind == "bad_target":
            raise ValueError(f"cannot load target {target!r} in the worker: {detail[0]}")
        raise MediaError(Reason.DECODE_ERROR, detail[0])

    def _exchange(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        conn = self._ensure_started()
        try:
            conn.send((target, args, kwargs))
        except OSError:  # the worker went away while idle (e.g. its starting thread ended): start anew
            conn = self._ensure_started()
            conn.send((target, args, kwargs))
        if not conn.poll(self.limits.timeout_s):
            raise MediaError(Reason.TIMEOUT, f"{target} ran longer than {self.limits.timeout_s:g}s; worker killed")
        try:
            return conn.recv()
        except (EOFError, OSError):
            raise self._death() from None

    def close(self) -> None:
        """Stop the worker: politely (end of input), then by SIGKILL if it does not exit in time."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(_CLOSE_TIMEOUT_S)
            self._kill()

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _ensure_started(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self._kill()
        parent_end, child_end = Pipe(duplex=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        env.setdefault("MALLOC_ARENA_MAX", _MALLOC_ARENAS)
        command = [
            sys.executable,
            "-c",
            "from deepsift.media.isolation import _serve; _serve()",
            str(child_end.fileno()),
            str(os.getpid()),
        ]
        try:
            self._process = subprocess.Popen(
                command, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=env
            )
        finally:
            child_end.close()
        self._conn = parent_end
        parent_end.send((self.initializer, self.init_args, self.limits.memory_mb))
        if not parent_end.poll(_STARTUP_TIMEOUT_S):
            self._kill()
            raise WorkerStartError(f"worker did not start within {_STARTUP_TIMEOUT_S:g}s")
        try:
            kind, detail = parent_end.recv()
        except (EOFError, OSError):
            raise WorkerStartError(f"worker died while starting: {self._death().detail}") from None
        if kind != "ready":
            self._kill()
            raise WorkerStartError(f"initializer {self.initializer!r} failed: {detail}")
        return parent_end

    def _death(self) -> MediaError:
        """The typed error for a worker that went away mid-call."""
        code = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(_CLOSE_TIMEOUT_S)
        self._kill()
        if code is None:
            return MediaError(Reason.DECODE_ERROR, "worker closed its pipe and did not exit")
        if code < 0:
            name = signal.Signals(-code).name
            if -code == signal.SIGKILL:
                return MediaError(Reason.RESOURCE_LIMIT, f"worker killed with {name} (out of memory?)")
            return MediaError(Reason.DECODE_ERROR, f"worker crashed with signal {name}")
        return MediaError(Reason.DECODE_ERROR, f"worker exited with status {code}")

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None


_WORKERS: dict[str, IsolatedWorker] = {}


def shared_worker(
    limits: DecodeLimits, initializer: str | None = None, init_args: tuple[Any, ...] = ()
) -> IsolatedWorker:
    """The warm worker of this process for these settings, started on first use.

    Spark reuses its Python workers across tasks, so one isolated worker per Python worker and
    settings serves every partition it runs, and the initializer (a face detector, say) runs once.
    """
    key = f"{limits.model_dump_json()}|{initializer}|{init_args!r}"
    worker = _WORKERS.get(key)
    if worker is None:
        worker = _WORKERS[key] = IsolatedWorker(limits, initializer=initializer, init_args=init_args)
    return worker


def _split_target(target: str) -> tuple[str, str]:
    module, _, attribute = target.partition(":")
    if not module or not attribute:
        raise ValueError(f"target must look like 'package.module:function', not {target!r}")
    return module, attribute


def _serve() -> None:
    """Worker main loop: started by :class:`IsolatedWorker` with the pipe's fd and the parent's pid."""
    conn = Connection(int(sys.argv[1]))
    _die_with_parent(int(sys.argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)
    initializer, init_args, memory_mb = conn.recv()
    runner = _Runner(memory_mb)
    try:
        if initializer is not None:
            runner.initialize(initializer, init_args)
    except Exception as error:  # the initializer's failure goes back to the parent, typed
        conn.send(("init_error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        reply = runner.run(*message)
        try:
            conn.send(reply)
        except MemoryError as error:
            conn.send(("memory", f"{type(error).__name__} sending the result: {error}"))
        except Exception as error:  # an unpicklable result is the target's fault, typed as such
            conn.send(("error", f"result not sendable: {type(error).__name__}: {error}"))


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


class _Runner:
    """Resolves and runs targets inside the worker, under the address-space limit."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.state: Any = None
        self.has_state = False
        self.functions: dict[str, Callable[..., Any]] = {}

    def initialize(self, initializer: str, init_args: tuple[Any, ...]) -> None:
        """Build the state passed to every target; it counts towards the baseline, not the budget."""
        self.state = self.resolve(initializer)(*init_args)
        self.has_state = True
        _set_address_space_limit(None)
        _set_address_space_limit(self.memory_mb)

    def resolve(self, target: str) -> Callable[..., Any]:
        """Import the target's module with the limit lifted, then cap memory above the new baseline."""
        if target not in self.functions:
            module_name, attribute = _split_target(target)
            _set_address_space_limit(None)
            try:
                found: Any = importlib.import_module(module_name)
                for part in attribute.split("."):
                    found = getattr(found, part)
            finally:
                _set_address_space_limit(self.memory_mb)
            self.functions[target] = found
        return self.functions[target]

    def run(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        try:
            function = self.resolve(target)
        except Exception as error:  # reported to the caller as a programming error
            return ("bad_target", f"{type(error).__name__}: {error}")
        try:
            if self.has_state:
                return ("ok", function(self.state, *args, **kwargs))
            return ("ok", function(*args, **kwargs))
        except MediaError as error:
            return ("media", error.reason.value, error.detail)
        except MemoryError as error:
            return ("memory", f"{type(error).__name__}: {error}")
        except Exception as error:  # any failure of the target becomes a typed decode_error
            return ("error", f"{type(error).__name__}: {error}")


def _set_address_space_limit(memory_mb: int | None) -> None:
    """Cap virtual memory at ``memory_mb`` above what is mapped now; ``None`` lifts the cap."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory_mb is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    mapped = _mapped_bytes()
    if mapped is None:
        return
    wanted = mapped + (memory_mb << 20)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def threads_that_fit(threads: int, working_bytes: int) -> int:
    """How many of ``threads`` new threads to start, each reserving its stack and using ``working_bytes``:
    as many as fit in half of what this process may still map under its address-space limit (all of
    them without a limit), at least one.

    A library that starts threads until the limit refuses one, or whose threads then run out of memory
    (FFmpeg's decoder threads, a frame buffer each), fails halfway, on paths that have crashed a worker;
    the other half of the room is for what the caller maps besides.
    """
    room = None if threads <= 1 else _address_space_room()  # one thread (extraction's) needs no lookup
    if room is None:
        return threads
    return max(1, min(threads, room // 2 // (_thread_stack_bytes() + working_bytes)))


def _address_space_room() -> int | None:
    """Bytes this process may still map under ``RLIMIT_AS``, or ``None`` without a limit (or where unknown)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _mapped_bytes()
    if soft == resource.RLIM_INFINITY or mapped is None:
        return None
    return max(0, soft - mapped)


def _thread_stack_bytes() -> int:
    """The address space a new thread's stack reserves: glibc's default is the stack limit, else 8 MiB."""
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    return 8 << 20 if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def _mapped_bytes() -> int | None:
    """This process's virtual memory size (Linux ``VmSize``), or ``None`` where it is not known."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) << 10
    except OSError:
        return None
    return None
