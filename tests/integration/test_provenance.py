"""Content Credentials through the lake: ingest of real signed clips writes ``provenance`` (idempotent,
revalidated when the trust list changes; nothing for an unsigned file, which the videos table marks as
checked), and the views, the moderation queue, the saved query and the daily report show it beside
verdicts that it never changes.

The verdicts are written here as rows, not scored: the clips are FFmpeg test patterns without faces
(a scan would judge them ``not_applicable``), and what is under test is how credentials and verdicts
meet, for each kind of verdict.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.lake.tables import PROVENANCE, SCAN_RUNS, VERDICTS, ensure_tables, merge_insert_new
from deepsift.media.probe import content_id
from deepsift.reports.data import ReportSettings, read_daily
from deepsift.review.queue import enqueue_flagged
from deepsift.sql import analyst
from deepsift.sql.views import LATEST_VERDICTS, ensure_views
from deepsift.stages.ingest import ingest
from tests import provenance_media as media

SCAN_DATE = date(2026, 12, 1)
RUN_ID = "scan-2026-12-01-provenance-fixture-v1-pp-test"
VERDICT_OF = {
    "generated.mp4": ("manipulated", 0.9),
    "camera.mp4": ("suspicious", 0.6),
    "altered.mp4": ("authentic", 0.1),
    "unsigned.mp4": ("manipulated", 0.8),
}
"""The verdict each clip gets: a flagged AI declaration, a flagged camera clip, an authentic-looking
tampered clip and a flagged unsigned one."""


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A day's folder of signed, altered and unsigned clips, and the trust list holding their root."""
    work = tmp_path_factory.mktemp("provenance")
    folder = work / "uploads"
    folder.mkdir()
    chain = media.make_chain()
    clip = media.encode_clip(folder / "unsigned.mp4")
    generated = media.sign(clip, folder / "generated.mp4", chain, "Example Video Generator", "trainedAlgorithmicMedia")
    media.sign(clip, folder / "camera.mp4", chain, "Example Camera", "digitalCapture")
    (folder / "altered.mp4").write_bytes(media.altered_after_signing(generated.read_bytes()))
    return folder, chain.write_trust_list(work / "anchors.pem")


def with_trust(config: Config, anchors: Path | None) -> Config:
    return config.model_copy(update={"provenance": config.provenance.model_copy(update={"trust_anchors": anchors})})


def provenance_rows(spark, config: Config, folder: Path) -> dict[str, dict]:
    ids = {content_id(path): path.name for path in folder.iterdir()}
    rows = spark.table(PROVENANCE.qualified(config.lake.schema_name)).collect()
    return {ids[row.video_id]: row.asDict(recursive=True) for row in rows if row.video_id in ids}


@pytest.fixture(scope="module")
def trusted(spark, lake_config, uploads) -> Config:
    config = with_trust(lake_config, uploads[1])
    summary = ingest(spark, config, [str(uploads[0])], SCAN_DATE)
    assert summary.provenance == {"valid": 2, "invalid": 1, "none": 1}
    return config


def test_ingest_records_each_clips_credentials_with_exact_statuses_and_fields(spark, trusted, uploads):
    rows = provenance_rows(spark, trusted, uploads[0])
    assert {name: (row["status"], row["declared_ai"]) for name, row in rows.items()} == {
        "generated.mp4": ("valid", True),
        "camera.mp4": ("valid", False),
        "altered.mp4": ("invalid", False),
    }
    generated = rows["generated.mp4"]
    assert generated["claim_generator"] == "Example Video Generator 1.0"
    assert generated["signer_subject"] == "CN=Test Signer, O=deepsift tests"
    assert generated["signer_issuer"] == "CN=Test Intermediate, O=deepsift tests"
    assert generated["actions"] == ["c2pa.created"]
    assert generated["digital_source_types"] == ["trainedAlgorithmicMedia"]
    assert (generated["ingredients"], generated["validation_failures"], generated["reason"]) == ([], [], None)
    assert generated["trust_list"] is not None and generated["manifests"] == 1
    assert rows["camera.mp4"]["digital_source_types"] == ["digitalCapture"]
    assert rows["altered.mp4"]["validation_failures"] == ["assertion.bmffHash.mismatch"]
    # credentials never keep a video from being scanned: each clip probed fine and awaits extraction
    ids = [content_id(path) for path in uploads[0].iterdir()]
    videos = spark.table(f"{trusted.lake.schema_name}.videos").where(F.col("video_id").isin(*ids)).collect()
    assert sorted((row.probe_status, row.credentials_checked) for row in videos) == [("ok", True)] * 4


def test_reingesting_changes_nothing_and_a_new_trust_list_revalidates(spark, trusted, uploads):
    before = provenance_rows(spark, trusted, uploads[0])
    ingest(spark, trusted, [str(uploads[0])], SCAN_DATE)
    assert provenance_rows(spark, trusted, uploads[0]) == before

    ingest(spark, with_trust(trusted, None), [str(uploads[0])], SCAN_DATE)
    untrusted = provenance_rows(spark, trusted, uploads[0])
    assert {name: (row["status"], row["declared_ai"]) for name, row in untrusted.items()} == {
        "generated.mp4": ("untrusted", False),
        "camera.mp4": ("untrusted", False),
        "altered.mp4": ("invalid", False),
    }
    assert untrusted["generated.mp4"]["trust_list"] is None
    assert untrusted["altered.mp4"]["trust_list"] is None  # revalidated, though its status stayed invalid

    ingest(spark, trusted, [str(uploads[0])], SCAN_DATE)
    again = provenance_rows(spark, trusted, uploads[0])
    assert {name: row["status"] for name, row in again.items()} == {name: row["status"] for name, row in before.items()}


@pytest.fixture(scope="module")
def judged(spark, trusted, uploads) -> dict[str, str]:
    """Verdict rows of one run for the day's clips, its ``scan_runs`` row, the views, and the queue."""
    schema = trusted.lake.schema_name
    ensure_tables(spark, schema, (VERDICTS, SCAN_RUNS))
    ids = {path.name: content_id(path) for path in uploads[0].iterdir()}
    now = datetime.now(UTC).replace(tzinfo=None)
    verdicts = [
        (ids[name], "provenance-fixture", 1, "pp-test", score, verdict, None, "mean", 8, 8, RUN_ID, now, SCAN_DATE, 8)
        for name, (verdict, score) in VERDICT_OF.items()
    ]
    merge_insert_new(spark, schema, VERDICTS, spark.createDataFrame(verdicts, VERDICTS.columns))
    run = [(RUN_ID, "manual", SCAN_DATE, "provenance-fixture", 1, "models:/provenance-fixture/1", "pp-test", None,
            4, None, None, None, "succeeded", None, now, now, None, None)]
    merge_insert_new(spark, schema, SCAN_RUNS, spark.createDataFrame(run, SCAN_RUNS.columns))
    ensure_views(spark, schema)
    enqueue_flagged(spark, trusted, RUN_ID)
    return {video_id: name for name, video_id in ids.items()}


def test_the_queue_labels_ai_declarations_and_queues_invalid_credentials(spark, trusted, judged):
    queue = spark.table(f"{trusted.lake.schema_name}.moderation_queue").collect()
    got = {judged[row.video_id]: (row.verdict, round(row.priority, 6), row.provenance_status) for row in queue}
    assert got == {
        "unsigned.mp4": ("manipulated", 4.8, "none"),
        "altered.mp4": ("authentic", 3.1, "invalid"),
        "camera.mp4": ("suspicious", 2.6, "valid"),
    }


def test_verdicts_keep_their_scores_and_the_latest_view_shows_credentials_beside_them(spark, trusted, judged):
    schema = trusted.lake.schema_name
    scores = {judged[row.video_id]: (row.verdict, row.score) for row in spark.table(VERDICTS.qualified(schema)).collect()}
    assert scores == VERDICT_OF
    latest = spark.table(LATEST_VERDICTS.qualified(schema)).collect()
    assert {judged[row.video_id]: (row.verdict, row.provenance_status, row.declared_ai) for row in latest} == {
        "generated.mp4": ("manipulated", "valid", True),
        "camera.mp4": ("suspicious", "valid", False),
        "altered.mp4": ("authentic", "invalid", False),
        "unsigned.mp4": ("manipulated", "none", False),
    }


def test_saved_queries_show_credentials_beside_the_verdicts(spark, trusted, judged):
    schema = trusted.lake.schema_name
    result = analyst.run_statement(spark, schema, *analyst.bind_saved("credentials"))
    named = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    assert sorted((judged[row["video_id"]], row["status"], row["verdict"]) for row in named) == [
        ("altered.mp4", "invalid", "authentic"),
        ("camera.mp4", "valid", "suspicious"),
        ("generated.mp4", "valid", "manipulated"),
    ]
    invalid = analyst.run_statement(spark, schema, *analyst.bind_saved("credentials", {"status": "invalid"}))
    assert [row[invalid.columns.index("validation_failures")] for row in invalid.rows] == [["assertion.bmffHash.mismatch"]]
    flagged = analyst.run_statement(spark, schema, *analyst.bind_saved("flagged"))
    assert {
        judged[row[flagged.columns.index("video_id")]]: row[flagged.columns.index("declared_ai")] for row in flagged.rows
    } == {"generated.mp4": True, "unsigned.mp4": False, "camera.mp4": False}


def test_the_daily_report_counts_and_shows_credentials(spark, trusted, judged):
    data = read_daily(spark, trusted, SCAN_DATE, ReportSettings())
    assert data.provenance_counts == {"invalid": 1, "none": 1, "valid": 2, "declared_ai": 1}
    assert {judged[video.video_id]: video.provenance_status for video in data.flagged} == {
        "generated.mp4": "valid", "unsigned.mp4": "none", "camera.mp4": "valid",
    }
    assert {judged[video.video_id]: (video.provenance_status, video.declared_ai) for video in data.listed} == {
        "generated.mp4": ("valid", True),
        "camera.mp4": ("valid", False),
        "altered.mp4": ("invalid", False),
        "unsigned.mp4": ("none", False),
    }


def test_a_run_judging_everything_authentic_still_queues_a_video_with_invalid_credentials(spark, trusted, judged):
    """Given its verdict counts, a run with no flag looks for invalid credentials before it skips the
    queue: here the lake holds one (written, so the table is past its first version). Last in the module:
    it adds a second model version's verdict on another date."""
    schema = trusted.lake.schema_name
    altered = next(video_id for video_id, name in judged.items() if name == "altered.mp4")
    run_id = "scan-2026-12-02-provenance-fixture-v2-pp-test"
    now = datetime.now(UTC).replace(tzinfo=None)
    verdict = (altered, "provenance-fixture", 2, "pp-test", 0.2, "authentic", None, "mean", 8, 8, run_id, now,
               date(2026, 12, 2), 8)
    merge_insert_new(spark, schema, VERDICTS, spark.createDataFrame([verdict], VERDICTS.columns))
    assert enqueue_flagged(spark, trusted, run_id, {"authentic": 1}) == 1
    queued = spark.table(f"{schema}.moderation_queue").where(F.col("model_version") == 2).collect()
    assert [(judged[row.video_id], row.verdict, row.provenance_status) for row in queued] == [
        ("altered.mp4", "authentic", "invalid")
    ]
