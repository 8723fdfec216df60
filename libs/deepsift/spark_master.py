"""Whether a Spark master can be reached, asked before anything waits on it; nothing but the standard
library and the error base.

Both the session factory (:mod:`deepsift.lake.session`) and the Airflow submissions
(:mod:`deepsift.orchestration.submit`) check the master first: Spark itself retries a standalone
master for about a minute before it gives up. This module sits below both, so imports run one way.

A ``spark://`` host that accepts the connection is also sent one RPC request for an endpoint that
does not exist (:data:`PROBE_FRAME`), which any Spark RPC server answers with an ``RpcFailure``
frame. A port where nothing answers, or something answers that is no Spark frame, is another
service: found in seconds, where Spark would retry registering for a minute.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from urllib.parse import urlparse

from deepsift.errors import DeepsiftError


class SubmissionError(DeepsiftError, ValueError):
    """An argument or setting of a Spark job is invalid (a master's address included); retrying cannot help."""


class MasterUnreachableError(DeepsiftError, ConnectionError):
    """No host of a standalone or Kubernetes master accepts a connection; a later retry may succeed."""


RPC_REQUEST, RPC_RESPONSE, RPC_FAILURE = 3, 4, 5
"""Message type bytes of Spark's transport protocol (``org.apache.spark.network.protocol.Message.Type``)."""
PROBE_ENDPOINT = "deepsift-reachability-probe"
"""An endpoint name no Spark process registers: the master answers "Could not find" and logs nothing."""


def _probe_frame() -> bytes:
    """One ``RpcRequest`` frame to :data:`PROBE_ENDPOINT`, as ``NettyRpcEnv`` writes its requests.

    The frame: its length (8 bytes, itself included), the type byte, a request id, the body's size, the
    body. The body: no sender address, no receiver address, the endpoint's name, then the message, a
    Java-serialised string (stream magic and version, then ``TC_STRING``).
    """
    name = PROBE_ENDPOINT.encode()
    message = b"ping"
    body = (
        struct.pack(">??H", False, False, len(name)) + name
        + struct.pack(">HHBH", 0xACED, 5, 0x74, len(message)) + message
    )
    return struct.pack(">qbqi", 8 + 1 + 8 + 4 + len(body), RPC_REQUEST, 1, len(body)) + body


PROBE_FRAME = _probe_frame()
MAX_ANSWER_BYTES = 1 << 20
"""A longer frame than any failure message (a stack trace) is not taken for an answer."""


def check_reachable(master: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`MasterUnreachableError` unless some host of a ``spark://`` or ``k8s://`` master answers.

    A ``spark://`` host must also answer :data:`PROBE_FRAME` like a Spark RPC server within
    ``timeout_s``; a ``k8s://`` host need only accept the connection. Local masters need no network;
    YARN finds its resource manager through the Hadoop configuration. An address that cannot be parsed
    raises :class:`SubmissionError`.
    """
    if master.startswith("spark://"):
        addresses = [_host_port(f"spark://{host}", 7077) for host in master.removeprefix("spark://").split(",")]
    elif master.startswith("k8s://"):
        url = master.removeprefix("k8s://")
        addresses = [_host_port(url if "://" in url else f"https://{url}", 443)]
    else:
        return
    failures = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as connection:
                failure = _rpc_failure(connection, timeout_s) if master.startswith("spark://") else None
        except OSError as error:
            failure = str(error)
        if failure is None:
            return
        failures.append(f"{host}:{port}: {failure}")
    raise MasterUnreachableError(f"Spark master {master} cannot be reached ({'; '.join(failures)})")


def _rpc_failure(connection: socket.socket, timeout_s: float) -> str | None:
    """Why the peer of ``connection`` is not a Spark RPC server, or None when it may be one.

    A peer that closes the connection without a word may be a master that requires authentication, so
    only silence and an answer that is no Spark frame count against it.
    """
    connection.settimeout(timeout_s)
    connection.sendall(PROBE_FRAME)
    answer = b""
    try:
        while len(answer) < 9:
            chunk = connection.recv(9 - len(answer))
            if not chunk:
                return None
            answer += chunk
    except TimeoutError:
        return f"accepted the connection but answered no Spark RPC request within {timeout_s:g} s"
    except ConnectionResetError:
        return None
    length, kind = struct.unpack(">qb", answer)
    if kind not in (RPC_RESPONSE, RPC_FAILURE) or not 9 <= length <= MAX_ANSWER_BYTES:
        return f"answered, but not in Spark's RPC protocol (first bytes {answer!r})"
    _read_rest(connection, length - len(answer))
    return None


def _read_rest(connection: socket.socket, size: int) -> None:
    """Read the answer's remaining bytes, so that closing the connection does not reset it (which the
    master would log as a warning with a stack trace)."""
    with contextlib.suppress(OSError):
        while size > 0 and (chunk := connection.recv(min(size, 65536))):
            size -= len(chunk)


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        raise SubmissionError(f"Spark master address {url} has an invalid port") from None
    if not parsed.hostname:
        raise SubmissionError(f"Spark master address {url} names no host")
    return parsed.hostname, port or (80 if parsed.scheme == "http" else default_port)
