"""Whether a Spark master can be reached, asked before anything waits on it; nothing but the standard
library and the error base.

Both the session factory (:mod:`deepsift.lake.session`) and the Airflow submissions
(:mod:`deepsift.orchestration.submit`) check the master first: Spark itself retries a standalone
master for about a minute before it gives up. This module sits below both, so imports run one way.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from deepsift.errors import DeepsiftError


class SubmissionError(DeepsiftError, ValueError):
    """An argument or setting of a Spark job is invalid (a master's address included); retrying cannot help."""


class MasterUnreachableError(DeepsiftError, ConnectionError):
    """No host of a standalone or Kubernetes master accepts a connection; a later retry may succeed."""


def check_reachable(master: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`MasterUnreachableError` unless some host of a ``spark://`` or ``k8s://`` master answers.

    Local masters need no network; YARN finds its resource manager through the Hadoop configuration.
    An address that cannot be parsed raises :class:`SubmissionError`.
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
            socket.create_connection((host, port), timeout=timeout_s).close()
            return
        except OSError as error:
            failures.append(f"{host}:{port}: {error}")
    raise MasterUnreachableError(f"Spark master {master} cannot be reached ({'; '.join(failures)})")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        raise SubmissionError(f"Spark master address {url} has an invalid port") from None
    if not parsed.hostname:
        raise SubmissionError(f"Spark master address {url} names no host")
    return parsed.hostname, port or (80 if parsed.scheme == "http" else default_port)
