"""What ingest learns about one file inside the isolated media worker: its probe and its Content
Credentials, in one round trip (a second call per file would cost more than reading the credentials).

When that call fails (the worker crashed, hung or ran out of memory), the two are taken apart to say
which one failed: the credentials are read again alone, and only if that fails too is the probe run
alone, so a file that breaks the probe keeps the probe's error as before and still gets its
credentials, and a manifest that breaks the SDK costs the credentials, not the probe.
"""

from __future__ import annotations

from deepsift.config import DecodeLimits
from deepsift.media.isolation import shared_worker
from deepsift.media.probe import ProbeResult, probe
from deepsift.provenance.credentials import (
    CredentialCheck,
    Credentials,
    ProvenanceReason,
    ProvenanceStatus,
    read_credentials,
)
from deepsift.reasons import MediaError


def probe_and_read(path: str, limits: DecodeLimits, check: CredentialCheck | None) -> tuple[ProbeResult, Credentials | None]:
    """The worker side: probe ``path``, then read its credentials unless ``check`` is None."""
    return probe(path, limits), None if check is None else read_credentials(path, check)


def inspect_file(path: str, limits: DecodeLimits, check: CredentialCheck | None) -> tuple[ProbeResult, Credentials | None]:
    """Probe ``path`` and read its credentials in the warm isolated worker; never raises for bad media."""
    worker = shared_worker(limits)
    try:
        return worker.call("deepsift.media.inspect:probe_and_read", path, limits, check)
    except MediaError as error:
        failed = ProbeResult(probe_status="error", probe_error=str(error))
        if check is None:
            return failed, None
    credentials = read_credentials_isolated(path, limits, check)
    if credentials.reason is not ProvenanceReason.READER_FAILED:
        return failed, credentials
    try:
        return worker.call("deepsift.media.probe:probe", path, limits), credentials
    except MediaError as error:
        return ProbeResult(probe_status="error", probe_error=str(error)), credentials


def read_credentials_isolated(path: str, limits: DecodeLimits, check: CredentialCheck) -> Credentials:
    """Read ``path``'s credentials alone in the isolated worker; a crashed or hung reader is ``invalid``."""
    try:
        return shared_worker(limits).call("deepsift.provenance.credentials:read_credentials", path, check)
    except MediaError as error:
        return Credentials(ProvenanceStatus.INVALID, reason=ProvenanceReason.READER_FAILED, detail=str(error))
