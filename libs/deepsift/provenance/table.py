"""Content Credentials at ingest: carried in ingest's per-file rows, then MERGEd into ``provenance``.

Ingest checks each file it can read in the isolated worker that probes it
(:func:`deepsift.media.inspect.inspect_file`), carries the result as the ``PROBE_COLUMNS`` of its
per-file rows (:func:`probe_columns`), and :func:`merge_provenance` then writes one row per video that
has credentials; a file without any gets no row, only ``videos.credentials_checked``. A verdict never
changes because of provenance: the two stand side by side in the views (``deepsift.sql.views``), and
the moderation queue applies the rule documented in ``deepsift.review.queue``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config, ConfigError
from deepsift.lake.tables import PROVENANCE, merge_changes
from deepsift.provenance.credentials import CredentialCheck, Credentials, ProvenanceStatus

PROBE_COLUMNS = (
    "provenance_status string, declared_ai boolean, manifest_label string, manifests int, claim_generator string, "
    "signer_subject string, signer_issuer string, signed_at timestamp, actions array<string>, "
    "digital_source_types array<string>, ingredients_json string, validation_failures array<string>, "
    "provenance_reason string, provenance_detail string"
)
"""The columns a per-file ingest row carries for provenance (NULL status: the file was not checked)."""

_INGREDIENTS_TYPE = "array<struct<title: string, relationship: string, format: string>>"


def credential_check(config: Config) -> CredentialCheck | None:
    """The check ``config`` asks for (None when ``provenance.enabled`` is off); reads the trust list once.

    A trust list that is missing or holds no certificate raises :class:`ConfigError` naming the key.
    """
    settings = config.provenance
    if not settings.enabled:
        return None
    anchors = None
    if settings.trust_anchors is not None:
        try:
            anchors = settings.trust_anchors.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"config key provenance.trust_anchors: cannot read {settings.trust_anchors}: {error}") from None
        if "-----BEGIN CERTIFICATE-----" not in anchors:
            raise ConfigError(
                f"config key provenance.trust_anchors: {settings.trust_anchors} holds no PEM certificate "
                "(expected one or more '-----BEGIN CERTIFICATE-----' blocks)"
            )
    return CredentialCheck(anchors, settings.max_manifest_bytes)


def probe_columns(credentials: Credentials | None) -> dict[str, object]:
    """``credentials`` as the values of ``PROBE_COLUMNS`` (all NULL when the file was not checked)."""
    names = [column.split()[0] for column in PROBE_COLUMNS.split(", ")]
    if credentials is None:
        return dict.fromkeys(names)
    signed_at = credentials.signed_at
    if signed_at is not None and signed_at.tzinfo is not None:
        signed_at = signed_at.astimezone(UTC).replace(tzinfo=None)  # Spark timestamps are naive UTC here
    return {
        "provenance_status": str(credentials.status),
        "declared_ai": credentials.declared_ai,
        "manifest_label": credentials.manifest_label,
        "manifests": credentials.manifests,
        "claim_generator": credentials.claim_generator,
        "signer_subject": credentials.signer_subject,
        "signer_issuer": credentials.signer_issuer,
        "signed_at": signed_at,
        "actions": list(credentials.actions),
        "digital_source_types": list(credentials.digital_source_types),
        "ingredients_json": json.dumps([asdict(ingredient) for ingredient in credentials.ingredients]),
        "validation_failures": list(credentials.validation_failures),
        "provenance_reason": str(credentials.reason) if credentials.reason else None,
        "provenance_detail": credentials.detail,
    }


def merge_provenance(spark: SparkSession, schema: str, files: DataFrame, check: CredentialCheck) -> int:
    """Write one ``provenance`` row per video of ``files`` (ingest's per-file rows) whose status is not
    ``none`` into the existing table.

    A row is inserted for a new video and replaced only when its outcome changed (status, failures,
    reason or trust list), so a rerun over the same files changes nothing. Returns rows written.
    """
    rows = (
        files.where(F.col("provenance_status") != str(ProvenanceStatus.NONE))
        .dropDuplicates(["video_id"])
        .select(
            "video_id",
            F.col("provenance_status").alias("status"),
            "declared_ai",
            "manifest_label",
            "manifests",
            "claim_generator",
            "signer_subject",
            "signer_issuer",
            "signed_at",
            "actions",
            "digital_source_types",
            F.from_json("ingredients_json", _INGREDIENTS_TYPE).alias("ingredients"),
            "validation_failures",
            F.col("provenance_reason").alias("reason"),
            F.col("provenance_detail").alias("detail"),
            F.lit(check.trust_list).cast("string").alias("trust_list"),
            F.lit(datetime.now(UTC).replace(tzinfo=None)).cast("timestamp").alias("checked_at"),
        )
    )
    changed = " OR ".join(
        f"NOT (t.{column} <=> s.{column})" for column in ("status", "validation_failures", "reason", "trust_list")
    )
    metrics = merge_changes(spark, schema, PROVENANCE, rows, changed)
    return 0 if metrics is None else int(metrics["num_inserted_rows"]) + int(metrics["num_updated_rows"])
