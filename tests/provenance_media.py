"""Real C2PA-signed test clips: short H.264 files encoded by FFmpeg, signed with the official SDK and a
throwaway certificate chain (root, intermediate, signer) made here with ``cryptography``.

Nothing is mocked: the files are what a camera or a generator that signs its output would upload, and
the hostile variants are made from them the way a tamperer or a broken tool would (altered bytes, a cut
or doubled manifest store, a store moved after the media data, a certificate that expired or does not
parse).
"""

from __future__ import annotations

import struct
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_BOX_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


@dataclass(frozen=True)
class SigningChain:
    """A root that can go on a trust list, and an intermediate-issued signer (PEM)."""

    root_pem: bytes
    intermediate_pem: bytes
    intermediate_key: ec.EllipticCurvePrivateKey
    signer_pem: bytes
    signer_key_pem: bytes

    def write_trust_list(self, path: Path) -> Path:
        path.write_bytes(self.root_pem)
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepsift tests"),
    ])


def _certificate(
    subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool, not_before: datetime, not_after: datetime,
) -> x509.Certificate:
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"),
        False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if not ca:  # C2PA wants a signer certificate for a named purpose; e-mail protection is one it accepts
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_chain(signer_valid_for: timedelta = timedelta(days=30)) -> SigningChain:
    now = datetime.now(UTC)
    root_key, intermediate_key, signer_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate("Test Root", "Test Root", root_key, root_key, True, now - timedelta(days=1), now + timedelta(days=365))
    intermediate = _certificate(
        "Test Intermediate", "Test Root", intermediate_key, root_key, True, now - timedelta(days=1), now + timedelta(days=365)
    )
    return SigningChain(
        root_pem=_pem(root),
        intermediate_pem=_pem(intermediate),
        intermediate_key=intermediate_key,
        signer_pem=_pem(
            _certificate("Test Signer", "Test Intermediate", signer_key, intermediate_key, False, now - timedelta(days=1), now + signer_valid_for)
        ),
        signer_key_pem=signer_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def encode_clip(path: Path, seconds: float = 1.0) -> Path:
    """A small H.264 MP4 made by FFmpeg from its test pattern."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def sign(source: Path, target: Path, chain: SigningChain, generator: str, source_type: str) -> Path:
    """Sign ``source`` into ``target`` with a ``c2pa.created`` action declaring ``source_type`` (IPTC term)."""
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": target.name,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": IPTC + source_type}]}}
        ],
    }
    info = c2pa.C2paSignerInfo(b"es256", chain.signer_pem + chain.intermediate_pem, chain.signer_key_pem, None)
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        builder.sign_file(str(source), str(target), signer)
    return target


def wait_until_expired(chain: SigningChain) -> None:
    """Sleep until the signer certificate of ``chain`` is past its end of validity."""
    end = x509.load_pem_x509_certificate(chain.signer_pem).not_valid_after_utc
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.0)


def top_level_boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of each top-level ISO BMFF box (the signed clips use 32-bit sizes)."""
    boxes, offset = [], 0
    while offset < len(data):
        size, box_type = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append((offset, size, box_type))
        offset += size
    return boxes


def manifest_box(data: bytes) -> tuple[int, int]:
    """(offset, size) of the C2PA manifest store box."""
    for offset, size, box_type in top_level_boxes(data):
        if box_type == b"uuid" and data[offset + 8:offset + 24] == C2PA_BOX_UUID:
            return offset, size
    raise AssertionError("no C2PA manifest store box")


def altered_after_signing(signed: bytes) -> bytes:
    """One byte of the media data flipped: what any edit after signing does to the hard binding."""
    mdat = next(offset for offset, _, box_type in top_level_boxes(signed) if box_type == b"mdat")
    altered = bytearray(signed)
    altered[mdat + 200] ^= 0xFF
    return bytes(altered)


def truncated_manifest(signed: bytes) -> bytes:
    """The manifest store cut in half, its box shrunk to match: a tool that wrote it out partly."""
    offset, size = manifest_box(signed)
    kept = (size - 24) // 2
    box = struct.pack(">I4s", 24 + kept, b"uuid") + signed[offset + 8:offset + 24 + kept]
    return signed[:offset] + box + signed[offset + size:]


def doubled_manifest(signed: bytes) -> bytes:
    """Two manifest store boxes, where C2PA allows one."""
    offset, size = manifest_box(signed)
    return signed[:offset + size] + signed[offset:offset + size] + signed[offset + size:]


def manifest_after_media(signed: bytes) -> bytes:
    """The manifest store box moved from before the media data to the end of the file."""
    offset, size = manifest_box(signed)
    return signed[:offset] + signed[offset + size:] + signed[offset:offset + size]


def malformed_certificate(signed: bytes, chain: SigningChain) -> bytes:
    """The signer certificate's DER inside the manifest with its outer length byte broken."""
    der = x509.load_pem_x509_certificate(chain.signer_pem).public_bytes(serialization.Encoding.DER)
    at = signed.index(der)
    broken = bytearray(signed)
    broken[at + 1] ^= 0x7F
    return bytes(broken)
