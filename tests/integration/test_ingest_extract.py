"""Ingest and extraction on real Spark and Delta over every shared test video.

The whole media folder is ingested and extracted once for the session, by the scan of
``scanned_media`` (tests/integration/conftest.py), which the scan tests read too; these tests check
its tables against the manifest and the issue's promises, in that scan's schema and preprocessing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from deepsift.lake.readonly import READ_ONLY_CONF, read_only_session
from deepsift.lake.tables import EXTRACTION_TABLES, table_version
from deepsift.media.sources import to_uri
from deepsift.reasons import Reason
from deepsift.sql.views import VIDEO_CREDENTIALS
from deepsift.stages.extract import LISTED_COLUMNS, balanced_by_cost, extract_pending, task_listing
from deepsift.stages.ingest import NoInputError, ingest


@pytest.fixture(scope="module")
def lake_config(scanned_media):
    """The scanned schema, with the scanned model's preprocessing (crop size, frames a video)."""
    return scanned_media.model_config


@pytest.fixture(scope="module")
def scanned(scanned_media):
    """The ingest and extraction summaries of the scan of every shared file."""
    return scanned_media.outcome.ingest, scanned_media.outcome.extract


def _media_files(media_dir: Path, folder: str | None = None) -> list[Path]:
    root = media_dir / folder if folder else media_dir
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".csv", ".md"))


def _table(spark, config, name):
    return spark.table(f"{config.lake.schema_name}.{name}")


def test_every_file_maps_to_exactly_one_video_row(spark, lake_config, media_dir, scanned):
    videos = _table(spark, lake_config, "videos").select("video_id", F.explode("uris").alias("u")).collect()
    rows_by_uri: dict[str, list[str]] = {}
    for row in videos:
        rows_by_uri.setdefault(row.u, []).append(row.video_id)
    files = [p for p in _media_files(media_dir)]
    files.append(media_dir / "manifest.csv")  # not a video: it must get a row with a reason as well
    for path in files:
        assert len(rows_by_uri.get(to_uri(str(path)), [])) == 1, path


def test_identical_bytes_are_one_video_with_both_names(spark, lake_config, media_dir, scanned):
    original = to_uri(str(media_dir / "edge" / "mjpeg_320x240.avi"))
    renamed = to_uri(str(media_dir / "edge" / "wrong_ext_avi_as.mp4"))
    rows = _table(spark, lake_config, "videos").where(F.array_contains("uris", original)).collect()
    assert len(rows) == 1
    assert sorted(rows[0].uris) == sorted([original, renamed])


def test_every_video_has_frames_or_a_typed_reason(spark, lake_config, scanned):
    _, extracted = scanned
    videos = _table(spark, lake_config, "videos")
    extractions = _table(spark, lake_config, "extractions").where(
        F.col("preprocess_version") == extracted.preprocess_version
    )
    joined = videos.join(extractions, "video_id", "left").collect()
    assert len(joined) == videos.count()
    allowed = {reason.value for reason in Reason}
    for row in joined:
        assert row.status in ("ok", "error"), row.uri
        if row.status == "ok":
            assert row.n_frames > 0 and row.reason is None, row.uri
        else:
            assert row.reason in allowed, (row.uri, row.reason)
            assert row.detail, row.uri


def test_known_broken_files_get_the_expected_reasons(spark, lake_config, media_dir, scanned):
    expected = {
        "empty_0_bytes.mp4": Reason.OPEN_ERROR,
        "random_bytes.mp4": Reason.OPEN_ERROR,
        "text_named.mp4": Reason.OPEN_ERROR,
        "truncated_half.mp4": Reason.OPEN_ERROR,
        "audio_only.m4a": Reason.NO_VIDEO_STREAM,
        "audio_only_but_named.mp4": Reason.NO_VIDEO_STREAM,
    }
    rows = (
        _table(spark, lake_config, "videos")
        .join(_table(spark, lake_config, "extractions"), "video_id")
        .select("uris", "reason")
        .collect()
    )
    reason_by_uri = {uri: row.reason for row in rows for uri in row.uris}
    for name, reason in expected.items():
        assert reason_by_uri[to_uri(str(media_dir / "edge" / name))] == reason.value, name


def test_faces_found_in_most_sampled_frames_of_every_face_video(spark, lake_config, media_dir, scanned):
    _, extracted = scanned
    version = extracted.preprocess_version
    extractions = _table(spark, lake_config, "extractions").where(F.col("preprocess_version") == version)
    faces = _table(spark, lake_config, "faces").where(F.col("preprocess_version") == version)
    frames_with_face = faces.groupBy("video_id").agg(F.countDistinct("frame_index").alias("with_face"))
    rows = (
        _table(spark, lake_config, "videos")
        .join(extractions, "video_id")
        .join(frames_with_face, "video_id", "left")
        .select("uris", "n_frames", "with_face")
        .collect()
    )
    by_uri = {uri: row for row in rows for uri in row.uris}
    for path in _media_files(media_dir, "faces"):
        row = by_uri[to_uri(str(path))]
        assert row.n_frames > 0, path.name
        assert (row.with_face or 0) / row.n_frames > 0.5, (path.name, row.with_face, row.n_frames)


def test_no_face_in_noise_and_black_clips(spark, lake_config, media_dir, scanned):
    """The CGI clip is not here: YuNet scores its human-like faces above 0.9 (docs/architecture.md)."""
    faces = _table(spark, lake_config, "faces")
    videos = _table(spark, lake_config, "videos")
    for relative in ("edge/noise_2s.mp4", "edge/all_black_2s.mp4", "no_faces/kivy_cityCC0_720x405.mpg"):
        uri = to_uri(str(media_dir / relative))
        found = faces.join(videos.where(F.array_contains("uris", uri)), "video_id").count()
        assert found == 0, (relative, found)


def test_faces_rows_hold_decodable_square_crops(spark, lake_config, scanned):
    from deepsift.faces.crops import decode_crop

    rows = _table(spark, lake_config, "faces").limit(5).collect()
    assert rows
    for row in rows:
        crop = decode_crop(bytes(row.crop))
        assert crop.shape == (lake_config.faces.crop_size, lake_config.faces.crop_size, 3)
        assert 0 < row.det_score <= 1 and row.bbox.w > 0 and row.bbox.h > 0


def test_rerunning_ingest_and_extract_changes_nothing(spark, lake_config, media_dir, scanned):
    def snapshot(name):
        frame = _table(spark, lake_config, name)
        return sorted(tuple(row) for row in frame.drop(*[c for c in ("crop",) if c in frame.columns]).collect())

    def versions():
        return {table.name: table_version(spark, lake_config.lake.schema_name, table) for table in EXTRACTION_TABLES}

    before = {name: snapshot(name) for name in ("videos", "extractions", "faces")}
    versions_before = versions()
    again = ingest(spark, lake_config, [str(media_dir)])
    extracted = extract_pending(spark, lake_config)
    assert again.new_videos == 0
    assert extracted.videos == 0
    assert {name: snapshot(name) for name in before} == before
    assert versions() == versions_before  # nor a file rewritten: no table has a new Delta version


def test_missing_inputs_are_reported_and_the_rest_ingested(spark, lake_config, media_dir, tmp_path, scanned):
    copy = tmp_path / "clip.mp4"
    shutil.copy(media_dir / "edge" / "tiny_64x64.mp4", copy)
    summary = ingest(spark, lake_config, [str(copy), str(tmp_path / "missing-folder")])
    assert summary.missing_inputs == [str(tmp_path / "missing-folder")]
    assert summary.files == 1
    with pytest.raises(NoInputError, match="missing-folder"):
        ingest(spark, lake_config, [str(tmp_path / "missing-folder")])


def test_every_readable_shared_video_has_credentials_status_none(spark, lake_config, scanned):
    """The shared media carry no Content Credentials: every file whose bytes were read was checked and is
    ``none``, which writes no ``provenance`` row; a file that could not be read was not checked."""
    ingested, _ = scanned
    assert set(ingested.provenance) == {"none"} and sum(ingested.provenance.values()) > 50
    assert _table(spark, lake_config, "provenance").count() == 0
    for row in VIDEO_CREDENTIALS.frame(spark, lake_config.lake.schema_name).collect():
        unread = row.video_id.startswith("unreadable-")
        assert (row.provenance_status, row.declared_ai) == ((None, None) if unread else ("none", False)), row


def test_spreading_videos_stays_in_their_session_after_a_read_only_one_is_made(spark):
    """The extraction's plan is built in the videos' own session. PySpark's ``RDD.toDF`` takes the session
    constructed last: after an analyst's read-only session in the same process, the extraction's append
    was refused by the read-only guard."""
    videos = spark.createDataFrame(
        [(f"v{i}", float(i), 64, 48) for i in range(5)], "video_id string, duration_s double, width int, height int"
    )
    analyst = read_only_session(spark, "default")  # constructed last
    spread = balanced_by_cost(videos, 2)
    assert analyst.conf.get(READ_ONLY_CONF) == "true"
    assert spread.sparkSession.conf.get(READ_ONLY_CONF, "false") == "false"
    assert spread.rdd.getNumPartitions() == 2
    assert sorted(row.video_id for row in spread.collect()) == [f"v{i}" for i in range(5)]


def test_up_to_one_pending_video_per_core_is_a_task_each_and_more_are_balanced(spark):
    """A small batch is laid out from the rows collected (no balancing job); a larger one by cost."""
    cores = spark.sparkContext.defaultParallelism

    def pending(videos: int):  # computed by a Spark job, as the anti-join over the lake's tables is
        return spark.range(videos).selectExpr(
            "concat('v', id) AS video_id", "concat('file:///v', id, '.mp4') AS uri", "'ok' AS probe_status",
            "CAST(NULL AS string) AS probe_error", "CAST(NULL AS int) AS rotation", "CAST(id AS double) AS duration_s",
            "64 AS width", "48 AS height",
        )

    assert task_listing(spark, pending(0)) is None
    for videos, tasks in ((1, 1), (cores, cores), (cores + 1, 2 * cores)):
        listing = task_listing(spark, pending(videos))
        assert listing.columns == list(LISTED_COLUMNS)
        per_task = listing.rdd.glom().map(len).collect()
        assert len(per_task) == tasks, (videos, per_task)
        assert sorted(row.video_id for row in listing.collect()) == sorted(f"v{i}" for i in range(videos))
        if videos <= cores:
            assert per_task == [1] * videos
