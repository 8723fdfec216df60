"""What ingest learns about one file inside the isolated media worker: its content id, its probe and
its Content Credentials, in one round trip (a second call per file would cost more than reading the
credentials). The worker hashes the file first, so the probe reads it from the page cache: the file is
read from storage once, by the warm worker, and the Spark task only waits.

When that call fails (the worker crashed, hung or ran out of memory), the two are taken apart to say
which one failed: the credentials are read again alone, and only if that fails too is the probe run
alone, so a file that breaks the probe keeps the probe's error as before and still gets its
credentials, and a manifest that breaks the SDK costs the credentials, not the probe. The content id is
then computed in the caller; after a timeout (hashing a very large file may be what ran long) the file
is hashed there and probed as if the combined call had never been made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from deepsift.config import DecodeLimits
from deepsift.media.isolation import shared_worker
from deepsift.media.probe import ProbeResult, content_id, probe
from deepsift.provenance.credentials import (
    CredentialCheck,
    Credentials,
    ProvenanceReason,
    ProvenanceStatus,
    read_credentials,
)
from deepsift.reasons import MediaError, Reason


@dataclass(frozen=True)
class Inspection:
    """One file as ingest records it: its content id (SHA-256 of its bytes), probe and credentials."""

    video_id: str
    probe: ProbeResult
    credentials: Credentials | None


def identify_and_read(path: str, limits: DecodeLimits, check: CredentialCheck | None) -> Inspection | str:
    """The worker side of :func:`identify_file`: hash ``path``, then probe it and read its credentials;
    why the file cannot be read (the ``OSError``'s text) when it cannot."""
    try:
        video_id = content_id(path)
    except OSError as error:
        return error.strerror or str(error)
    return Inspection(video_id, *probe_and_read(path, limits, check))


def identify_file(path: str | os.PathLike[str], limits: DecodeLimits, check: CredentialCheck | None) -> Inspection:
    """Hash ``path``, probe it and read its credentials in one call to the warm isolated worker.

    Raises ``OSError`` when the file's bytes cannot be read (as :func:`~deepsift.media.probe.content_id`
    does); never raises for bad media: the probe's and the credentials' errors are as
    :func:`inspect_file` gives them.
    """
    try:
        found = shared_worker(limits).call("deepsift.media.inspect:identify_and_read", str(path), limits, check)
    except MediaError as error:
        video_id = content_id(path)
        if error.reason is Reason.TIMEOUT:
            return Inspection(video_id, *inspect_file(str(path), limits, check))
        return Inspection(video_id, *_inspect_apart(str(path), limits, check, error))
    if isinstance(found, str):
        raise OSError(found)
    return found


def probe_and_read(path: str, limits: DecodeLimits, check: CredentialCheck | None) -> tuple[ProbeResult, Credentials | None]:
    """The worker side: probe ``path``, then read its credentials unless ``check`` is None."""
    return probe(path, limits), None if check is None else read_credentials(path, check)


def inspect_file(path: str, limits: DecodeLimits, check: CredentialCheck | None) -> tuple[ProbeResult, Credentials | None]:
    """Probe ``path`` and read its credentials in the warm isolated worker; never raises for bad media."""
    try:
        return shared_worker(limits).call("deepsift.media.inspect:probe_and_read", path, limits, check)
    except MediaError as error:
        return _inspect_apart(path, limits, check, error)


def _inspect_apart(
    path: str, limits: DecodeLimits, check: CredentialCheck | None, error: MediaError
) -> tuple[ProbeResult, Credentials | None]:
    """After the combined call failed with ``error``: the credentials alone, then the probe alone if they failed too."""
    failed = ProbeResult(probe_status="error", probe_error=str(error))
    if check is None:
        return failed, None
    credentials = read_credentials_isolated(path, limits, check)
    if credentials.reason is not ProvenanceReason.READER_FAILED:
        return failed, credentials
    try:
        return shared_worker(limits).call("deepsift.media.probe:probe", path, limits), credentials
    except MediaError as error:
        return ProbeResult(probe_status="error", probe_error=str(error)), credentials


def read_credentials_isolated(path: str, limits: DecodeLimits, check: CredentialCheck) -> Credentials:
    """Read ``path``'s credentials alone in the isolated worker; a crashed or hung reader is ``invalid``."""
    try:
        return shared_worker(limits).call("deepsift.provenance.credentials:read_credentials", path, check)
    except MediaError as error:
        return Credentials(ProvenanceStatus.INVALID, reason=ProvenanceReason.READER_FAILED, detail=str(error))
