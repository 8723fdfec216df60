"""Run a server as a child process in the foreground, bound to 127.0.0.1, until Ctrl-C or SIGTERM.

``deepsift sql-server`` (Spark's Thrift server) and ``deepsift mlflow-ui`` (MLflow's server) share
it. A taken port is refused before anything starts (:func:`check_port_free`); readiness is the port
accepting connections. Stopping sends the child SIGTERM, so it runs its shutdown hooks (the JVM
releases the metastore; MLflow's server passes the signal to its uvicorn process and waits for it),
and SIGKILL only if it is still running after :data:`STOP_TIMEOUT_S`. The child stays in deepsift's
process group, so whoever stops that group (a terminal's Ctrl-C, a supervisor) reaches it too.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

from deepsift.errors import DeepsiftError

BIND_HOST = "127.0.0.1"
STOP_TIMEOUT_S = 60.0
_POLL_S = 0.2


class ServerStartError(DeepsiftError, RuntimeError):
    """A server cannot start: its port is taken, or it exited before it listened."""


def run_in_foreground(
    command: list[str], port: int, on_ready: Callable[[], None], *, what: str, env: dict[str, str] | None = None
) -> int:
    """Run ``command`` until it exits (its status) or until Ctrl-C or SIGTERM stops it (0).

    Callers check the port with :func:`check_port_free` first, before any slow preparation.
    ``on_ready`` runs once ``port`` accepts connections on :data:`BIND_HOST`; ``what`` names the
    server in errors. SIGTERM is turned into Ctrl-C only while this runs on the main thread.
    """
    process = subprocess.Popen(command, env=env)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        while process.poll() is None and not _accepts_connections(port):
            time.sleep(_POLL_S)
        if process.returncode is not None:
            raise ServerStartError(
                f"{what} exited with status {process.returncode} before it listened on port {port}; its log is above"
            )
        on_ready()
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(process)
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def check_port_free(port: int) -> None:
    """Raise :class:`ServerStartError` when ``port`` on :data:`BIND_HOST` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((BIND_HOST, port))
        except OSError as error:
            raise ServerStartError(
                f"port {port} on {BIND_HOST} is in use ({error.strerror}); choose another with --port"
            ) from None


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the child unless it has exited; SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((BIND_HOST, port), timeout=1):
            return True
    except OSError:
        return False
