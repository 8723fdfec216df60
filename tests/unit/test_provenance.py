"""Content Credentials read from real signed clips: statuses, fields, trust on and off, tampering and
hostile manifests. No Spark; ingest's use of the same reader is in tests/integration/test_provenance.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from deepsift.config import ConfigError, DecodeLimits, load_config
from deepsift.media.inspect import inspect_file, read_credentials_isolated
from deepsift.provenance.credentials import (
    CredentialCheck,
    Credentials,
    ProvenanceReason,
    ProvenanceStatus,
    read_credentials,
)
from deepsift.provenance.table import credential_check
from tests import provenance_media as media

MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class SignedClips:
    chain: media.SigningChain
    trust_list: str
    generated: Path
    camera: Path
    folder: Path

    def variant(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> SignedClips:
    folder = tmp_path_factory.mktemp("signed")
    chain = media.make_chain()
    clip = media.encode_clip(folder / "unsigned.mp4")
    return SignedClips(
        chain=chain,
        trust_list=chain.root_pem.decode(),
        generated=media.sign(clip, folder / "generated.mp4", chain, "Example Video Generator", "trainedAlgorithmicMedia"),
        camera=media.sign(clip, folder / "camera.mp4", chain, "Example Camera", "digitalCapture"),
        folder=folder,
    )


def read(path: Path, trust_list: str | None, max_bytes: int = MAX_BYTES) -> Credentials:
    return read_credentials(str(path), CredentialCheck(trust_list, max_bytes))


def test_a_trusted_generator_declaring_ai_is_valid_with_every_field(clips):
    got = read(clips.generated, clips.trust_list)
    assert got.status is ProvenanceStatus.VALID
    assert got.declared_ai is True
    assert got.manifest_label is not None and got.manifest_label.startswith("urn:c2pa:")
    assert got.manifests == 1
    assert got.claim_generator == "Example Video Generator 1.0"
    assert got.signer_subject == "CN=Test Signer, O=deepsift tests"
    assert got.signer_issuer == "CN=Test Intermediate, O=deepsift tests"
    assert got.signed_at is None  # signed without a time-stamp authority
    assert got.actions == ("c2pa.created",)
    assert got.digital_source_types == ("trainedAlgorithmicMedia",)
    assert got.ingredients == ()
    assert got.validation_failures == ()
    assert got.reason is None


def test_a_trusted_camera_is_valid_and_declares_no_ai(clips):
    got = read(clips.camera, clips.trust_list)
    assert (got.status, got.declared_ai, got.digital_source_types) == (ProvenanceStatus.VALID, False, ("digitalCapture",))
    assert got.claim_generator == "Example Camera 1.0"


def test_without_the_chain_on_the_trust_list_the_signer_is_untrusted_and_declares_nothing(clips):
    other_root = media.make_chain().root_pem.decode()
    for trust_list in (None, other_root):
        got = read(clips.generated, trust_list)
        assert got.status is ProvenanceStatus.UNTRUSTED, trust_list
        assert got.validation_failures == ("signingCredential.untrusted",)
        assert got.declared_ai is False  # an unverified claim of AI generation is not a declaration
        assert got.digital_source_types == ("trainedAlgorithmicMedia",)  # still shown as what it says


def test_bytes_altered_after_signing_are_invalid_with_the_hash_mismatch(clips):
    altered = clips.variant("altered.mp4", media.altered_after_signing(clips.generated.read_bytes()))
    for trust_list in (clips.trust_list, None):
        got = read(altered, trust_list)
        assert got.status is ProvenanceStatus.INVALID
        assert "assertion.bmffHash.mismatch" in got.validation_failures
        assert got.declared_ai is False
    assert read(altered, clips.trust_list).validation_failures == ("assertion.bmffHash.mismatch",)


def test_unsigned_clips_and_every_shared_media_file_give_none(clips, media_dir):
    assert read(clips.folder / "unsigned.mp4", clips.trust_list) == Credentials(ProvenanceStatus.NONE)
    files = sorted(path for path in media_dir.rglob("*") if path.is_file())
    assert len(files) > 50
    for path in files:
        got = read(path, clips.trust_list)
        assert got.status is ProvenanceStatus.NONE, (path, got)
        assert got.reason in (None, ProvenanceReason.UNSUPPORTED_FORMAT), (path, got)
    formats = {path.name: read(path, None).reason for path in files}
    assert formats["manifest.csv"] is ProvenanceReason.UNSUPPORTED_FORMAT


@pytest.mark.parametrize(
    ("name", "tamper", "reason", "failure"),
    [
        ("truncated.mp4", media.truncated_manifest, ProvenanceReason.MANIFEST_UNREADABLE, None),
        ("doubled.mp4", media.doubled_manifest, ProvenanceReason.MANIFEST_UNREADABLE, None),
        ("moved.mp4", media.manifest_after_media, None, "assertion.bmffHash.mismatch"),
    ],
)
def test_a_cut_doubled_or_misplaced_manifest_store_is_invalid_never_a_crash(clips, name, tamper, reason, failure):
    got = read(clips.variant(name, tamper(clips.generated.read_bytes())), clips.trust_list)
    assert got.status is ProvenanceStatus.INVALID
    assert got.reason == reason
    assert (got.detail is not None) == (reason is not None)
    if failure:
        assert failure in got.validation_failures


def test_a_malformed_signer_certificate_is_invalid_with_the_sdk_message(clips):
    broken = clips.variant("broken-cert.mp4", media.malformed_certificate(clips.generated.read_bytes(), clips.chain))
    got = read(broken, clips.trust_list)
    assert (got.status, got.reason) == (ProvenanceStatus.INVALID, ProvenanceReason.MANIFEST_UNREADABLE)
    assert "certificate" in (got.detail or "")


def test_a_certificate_that_expired_since_signing_is_invalid(clips):
    chain = media.make_chain(signer_valid_for=timedelta(seconds=2))
    signed = media.sign(clips.folder / "unsigned.mp4", clips.folder / "expired.mp4", chain, "Example Camera", "digitalCapture")
    media.wait_until_expired(chain)
    got = read(signed, chain.root_pem.decode())
    assert got.status is ProvenanceStatus.INVALID
    assert "signingCredential.expired" in got.validation_failures


def test_an_oversized_manifest_store_is_not_parsed(clips):
    got = read(clips.generated, clips.trust_list, max_bytes=1024)
    assert (got.status, got.reason) == (ProvenanceStatus.INVALID, ProvenanceReason.MANIFEST_TOO_LARGE)
    assert "above the limit of 1024" in (got.detail or "")


def test_the_isolated_worker_reads_the_same_and_a_hung_reader_is_a_typed_reason(clips):
    check = CredentialCheck(clips.trust_list, MAX_BYTES)
    assert read_credentials_isolated(str(clips.generated), DecodeLimits(), check) == read(clips.generated, clips.trust_list)
    hung = read_credentials_isolated(str(clips.generated), DecodeLimits(timeout_s=0.001), check)
    assert (hung.status, hung.reason) == (ProvenanceStatus.INVALID, ProvenanceReason.READER_FAILED)
    assert (hung.detail or "").startswith("timeout:")


def test_ingest_inspects_a_file_in_one_worker_call_and_a_failing_one_gets_both_parts_typed(clips):
    check = CredentialCheck(clips.trust_list, MAX_BYTES)
    probed, credentials = inspect_file(str(clips.generated), DecodeLimits(), check)
    assert (probed.probe_status, probed.codec) == ("ok", "h264")
    assert credentials == read(clips.generated, clips.trust_list)
    assert inspect_file(str(clips.generated), DecodeLimits(), None)[1] is None  # provenance.enabled: false
    # everything times out: the combined call, then the credentials alone, then the probe alone
    probed, credentials = inspect_file(str(clips.generated), DecodeLimits(timeout_s=0.001), check)
    assert (probed.probe_status, (probed.probe_error or "").split(":")[0]) == ("error", "timeout")
    assert (credentials.status, credentials.reason) == (ProvenanceStatus.INVALID, ProvenanceReason.READER_FAILED)


def test_the_trust_list_is_read_once_and_a_bad_one_names_the_key(clips, tmp_path):
    def check_for(**settings: object) -> CredentialCheck | None:
        return credential_check(load_config(environ={}, overrides={f"provenance.{k}": v for k, v in settings.items()}))

    anchors = clips.chain.write_trust_list(tmp_path / "anchors.pem")
    assert check_for(trust_anchors=str(anchors)) == CredentialCheck(clips.trust_list, MAX_BYTES)
    assert check_for() == CredentialCheck(None, MAX_BYTES)
    assert check_for(enabled=False, trust_anchors=str(anchors)) is None
    with pytest.raises(ConfigError, match=r"config key provenance\.trust_anchors: cannot read"):
        check_for(trust_anchors=str(tmp_path / "missing.pem"))
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"config key provenance\.trust_anchors: .* holds no PEM certificate"):
        check_for(trust_anchors=str(tmp_path / "empty.pem"))
    with pytest.raises(ConfigError, match=r"provenance\.max_manifest_bytes"):
        check_for(max_manifest_bytes=10)
