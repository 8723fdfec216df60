"""Read and validate a video's C2PA Content Credentials with the official SDK (``c2pa-python``).

:func:`read_credentials` runs inside the isolated media worker (``deepsift.media.isolation``), like
the probe: the SDK parses untrusted bytes in native code, and a manifest that crashes or hangs it must
cost one worker, not a Spark task. It never raises for bad input; every outcome is a
:class:`Credentials` with a :class:`ProvenanceStatus`:

* ``none``: no manifest store in the file (or a container C2PA does not embed in, with a reason);
* ``valid``: the store parses, the claim signature and the hard binding over the file's bytes hold,
  and the signing certificate chains to an anchor of the configured trust list;
* ``untrusted``: all of that holds except the trust list does not vouch for the signer;
* ``invalid``: anything else (bytes altered after signing, a bad or expired certificate, a truncated,
  duplicated or oversized store), with the SDK's validation codes or a typed :class:`ProvenanceReason`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
"""IPTC digital source types that declare generative-AI output (the last segment of the type's URI)."""

_C2PA_BOX_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
"""The ISO BMFF ``uuid`` box type that holds a C2PA manifest store."""
_BOX_WALK_LIMIT = 4096
"""Top-level boxes examined at most while looking for the manifest store (a real file has a handful)."""


class ProvenanceStatus(StrEnum):
    """``provenance.status`` and the verdict views' ``provenance_status``."""

    NONE = "none"
    VALID = "valid"
    INVALID = "invalid"
    UNTRUSTED = "untrusted"


class ProvenanceReason(StrEnum):
    """Why the credentials could not be validated by the SDK's own codes alone (``provenance.reason``)."""

    UNSUPPORTED_FORMAT = "unsupported_format"
    """A container C2PA defines no embedding for (Matroska, WebM, MPEG-TS, ...): status ``none``."""
    MANIFEST_UNREADABLE = "manifest_unreadable"
    """The SDK refused the store (truncated, malformed CBOR, two stores, an unparsable certificate)."""
    MANIFEST_TOO_LARGE = "manifest_too_large"
    """The store is larger than ``provenance.max_manifest_bytes``; it is not parsed."""
    READER_FAILED = "reader_failed"
    """The reader crashed, hung or ran out of memory in the isolated worker (the detail says which)."""


@dataclass(frozen=True)
class Ingredient:
    title: str | None
    relationship: str | None
    format: str | None


@dataclass(frozen=True)
class Credentials:
    """What one video's manifest store says and whether it holds; the columns of ``provenance``."""

    status: ProvenanceStatus
    manifest_label: str | None = None
    manifests: int = 0
    claim_generator: str | None = None
    signer_subject: str | None = None
    signer_issuer: str | None = None
    signed_at: datetime | None = None
    actions: tuple[str, ...] = ()
    digital_source_types: tuple[str, ...] = ()
    ingredients: tuple[Ingredient, ...] = ()
    validation_failures: tuple[str, ...] = ()
    reason: ProvenanceReason | None = None
    detail: str | None = None
    declared_ai: bool = field(init=False)

    def __post_init__(self) -> None:
        declared = self.status is ProvenanceStatus.VALID and bool(AI_SOURCE_TYPES & set(self.digital_source_types))
        object.__setattr__(self, "declared_ai", declared)


@dataclass(frozen=True)
class CredentialCheck:
    """How to check credentials: the trusted root certificates (PEM text; None: every signer is
    untrusted) and the largest manifest store that is parsed."""

    anchors_pem: str | None
    max_manifest_bytes: int

    @property
    def trust_list(self) -> str | None:
        """A short id of the trust list's contents, stored with each row so that a changed list revalidates."""
        return hashlib.sha256(self.anchors_pem.encode()).hexdigest()[:16] if self.anchors_pem else None


def read_credentials(path: str, check: CredentialCheck) -> Credentials:
    """Read the manifest store of the video at ``path`` and validate it as ``check`` says.

    For example::

        read_credentials("upload.mp4", CredentialCheck(open("anchors.pem").read(), 16 << 20)).status
    """
    import c2pa

    anchors_pem, max_manifest_bytes = check.anchors_pem, check.max_manifest_bytes
    with open(path, "rb") as handle:
        head = handle.read(12)
        mime = _mime_type(head)
        if mime is None:
            return Credentials(ProvenanceStatus.NONE, reason=ProvenanceReason.UNSUPPORTED_FORMAT)
        if mime == "video/mp4":
            store_bytes = _bmff_manifest_store_size(handle)
            if store_bytes is None:
                return Credentials(ProvenanceStatus.NONE)
            if store_bytes > max_manifest_bytes:
                return Credentials(
                    ProvenanceStatus.INVALID,
                    reason=ProvenanceReason.MANIFEST_TOO_LARGE,
                    detail=f"manifest store of {store_bytes} bytes, above the limit of {max_manifest_bytes}",
                )
        handle.seek(0)
        settings: dict[str, Any] = {"verify": {"verify_trust": True}}
        if anchors_pem:
            settings["trust"] = {"trust_anchors": anchors_pem}
        try:
            with c2pa.Context.from_dict(settings) as context, c2pa.Reader(mime, handle, context=context) as reader:
                return _credentials(reader)
        except c2pa.C2paError.ManifestNotFound:  # a subclass the SDK attaches at import time
            return Credentials(ProvenanceStatus.NONE)
        except c2pa.C2paError as error:
            return Credentials(ProvenanceStatus.INVALID, reason=ProvenanceReason.MANIFEST_UNREADABLE, detail=str(error))


def _mime_type(head: bytes) -> str | None:
    """The C2PA format of a video from its first bytes (not its name, which uploads get wrong)."""
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/avi"
    return None


def _bmff_manifest_store_size(handle: Any) -> int | None:
    """Size in bytes of the first top-level C2PA ``uuid`` box, or None when the file has none.

    Walks box headers only, so a file without credentials costs a few reads however large it is.
    """
    handle.seek(0)
    for _ in range(_BOX_WALK_LIMIT):
        start = handle.tell()
        header = handle.read(8)
        if len(header) < 8:
            return None
        size, box_type = struct.unpack(">I4s", header)
        header_size = 8
        if size == 1:
            large = handle.read(8)
            if len(large) < 8:
                return None
            (size,) = struct.unpack(">Q", large)
            header_size = 16
        if box_type == b"uuid" and handle.read(16) == _C2PA_BOX_UUID:
            return size if size else None
        if size == 0 or size < header_size:  # "to the end of the file", or a malformed size
            return None
        handle.seek(start + size)
    return None


def _credentials(reader: Any) -> Credentials:
    store = json.loads(reader.json())
    manifests: dict[str, Any] = store.get("manifests") or {}
    label = store.get("active_manifest")
    active = manifests.get(label) or {}
    state = reader.get_validation_state()
    failures = tuple(item["code"] for item in ((reader.get_validation_results() or {}).get("activeManifest") or {}).get("failure", []))
    status = {"Trusted": ProvenanceStatus.VALID, "Valid": ProvenanceStatus.UNTRUSTED}.get(state, ProvenanceStatus.INVALID)
    signature = active.get("signature_info") or {}
    subject, issuer = _certificate_names(reader, label)
    return Credentials(
        status=status,
        manifest_label=label,
        manifests=len(manifests),
        claim_generator=_claim_generator(active),
        signer_subject=subject or signature.get("common_name"),
        signer_issuer=issuer or signature.get("issuer"),
        signed_at=datetime.fromisoformat(signature["time"]) if signature.get("time") else None,
        actions=tuple(action.get("action", "") for action in _actions(active)),
        digital_source_types=tuple(sorted({t for manifest in manifests.values() for t in _source_types(manifest)})),
        ingredients=tuple(
            Ingredient(item.get("title"), item.get("relationship"), item.get("format"))
            for item in active.get("ingredients") or []
        ),
        validation_failures=failures,
    )


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info:
        first = info[0]
        return " ".join(part for part in (first.get("name"), first.get("version")) if part) or None
    return manifest.get("claim_generator")


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions.extend((assertion.get("data") or {}).get("actions") or [])
    return actions


def _source_types(manifest: dict[str, Any]) -> set[str]:
    """Every ``digitalSourceType`` a manifest's actions declare, as the URI's last segment."""
    return {
        str(action["digitalSourceType"]).rstrip("/").rsplit("/", 1)[-1]
        for action in _actions(manifest)
        if action.get("digitalSourceType")
    }


def _certificate_names(reader: Any, label: str | None) -> tuple[str | None, str | None]:
    """The signing certificate's subject and issuer as ``CN=..., O=...`` (the SDK's JSON names only CNs)."""
    for manifest in json.loads(reader.crjson()).get("manifests") or []:
        if manifest.get("label") == label:
            info = (manifest.get("signature") or {}).get("certificateInfo") or {}
            return _distinguished_name(info.get("subject")), _distinguished_name(info.get("issuer"))
    return None, None


def _distinguished_name(parts: dict[str, str] | None) -> str | None:
    return ", ".join(f"{key}={value}" for key, value in parts.items()) if parts else None
