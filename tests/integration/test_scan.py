"""The scan end to end over every shared test video: one verdict per video, reruns change nothing,
rescoring with another version adds only that version's rows. The scan is the session's
``scanned_media`` (tests/integration/conftest.py), which the ingest and extraction tests read too."""

from __future__ import annotations

from datetime import date

import pytest
import torch
from pyspark.sql import functions as F

from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.contract_check import ContractSettingError
from deepsift.detect.devices import GpuSchedulingError, visible_cuda_devices
from deepsift.lake.tables import EXTRACTIONS, FACE_SCORES, FACES, SCAN_RUNS, VERDICTS, VIDEOS, table_version
from deepsift.media.sources import to_uri
from deepsift.reasons import Reason
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.stages.scan import ContractMismatchError, ScanRequest, rescore, run_scan
from deepsift.stages.verdicts import LISTED_VERDICTS


def _register(config, seed: int, input_size: int = 64):
    """Another untrained version under the scanned model's name, with the champion's contract but ``input_size``."""
    torch.manual_seed(seed)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=input_size, frames_per_video=8)
    network = build_detector_network(contract.architecture)
    registry = DetectorRegistry(config.mlflow, config.home)
    return registry.log_and_register(network.state_dict(), contract, {"auc": 0.5}, "# untrained test model")


@pytest.fixture(scope="module")
def config(scanned_media):
    return scanned_media.config


@pytest.fixture(scope="module")
def first_scan(scanned_media):
    return scanned_media.model, scanned_media.outcome


@pytest.fixture(scope="module")
def rescan(scanned_media, media_dir):
    """The request that scans the shared media again, on the first scan's date."""
    return ScanRequest(scan_date=scanned_media.scan_date, inputs=[str(media_dir)], trigger="test")


def _snapshot(spark, config, table):
    frame = spark.table(f"{config.lake.schema_name}.{table}")
    return sorted(tuple(row) for row in frame.drop(*[c for c in ("crop", "scanned_at") if c in frame.columns]).collect())


def test_exactly_one_verdict_per_video_and_model_version(spark, config, first_scan):
    model, outcome = first_scan
    schema = config.lake.schema_name
    verdicts = spark.table(f"{schema}.verdicts").where(F.col("model_version") == model.version)
    assert verdicts.count() == spark.table(f"{schema}.videos").count()
    assert verdicts.groupBy("video_id").count().where("count > 1").count() == 0
    assert outcome.verdicts.videos == verdicts.count()


def test_the_outcome_lists_the_verdicts_written_as_the_table_gives_them_back(spark, config, first_scan):
    """What ``deepsift scan`` prints comes from the rows in hand, not from a query: the same list, in the
    same order, as reading the run's verdicts back."""
    _, outcome = first_scan
    schema = config.lake.schema_name
    read_back = spark.sql(
        f"SELECT v.uri, d.verdict, d.score, d.reason FROM {schema}.verdicts d JOIN {schema}.videos v USING (video_id) "
        "WHERE d.run_id = :run_id ORDER BY d.verdict, d.score DESC NULLS LAST, v.uri LIMIT 50",
        args={"run_id": outcome.run_id},
    ).collect()
    listed = outcome.verdicts.listed
    assert [(row.uri, row.verdict, row.score, row.reason) for row in listed] == [tuple(row) for row in read_back]
    assert len(listed) == min(LISTED_VERDICTS, outcome.verdicts.videos)


def test_broken_files_get_typed_errors_and_faceless_clips_no_face(spark, config, media_dir, first_scan):
    schema = config.lake.schema_name
    rows = spark.table(f"{schema}.verdicts").join(spark.table(f"{schema}.videos"), "video_id").collect()
    by_uri = {uri: row for row in rows for uri in row.uris}
    for name, reason in {"random_bytes.mp4": Reason.OPEN_ERROR, "audio_only.m4a": Reason.NO_VIDEO_STREAM}.items():
        row = by_uri[to_uri(str(media_dir / "edge" / name))]
        assert (row.verdict, row.reason, row.score) == ("error", reason.value, None)
    for name in ("noise_2s.mp4", "all_black_2s.mp4"):
        row = by_uri[to_uri(str(media_dir / "edge" / name))]
        assert (row.verdict, row.reason, row.score) == ("not_applicable", "no_face", None)
    for path in (media_dir / "faces").iterdir():
        row = by_uri[to_uri(str(path))]
        assert row.verdict in ("authentic", "suspicious", "manipulated") and 0.0 <= row.score <= 1.0


def test_the_run_is_recorded_with_model_version_and_counts(spark, config, first_scan):
    model, outcome = first_scan
    run = spark.table(f"{config.lake.schema_name}.scan_runs").where(F.col("run_id") == outcome.run_id).collect()
    assert len(run) == 1
    assert (run[0].status, run[0].trigger, run[0].model_version) == ("succeeded", "test", model.version)
    assert sum(run[0].counts_by_verdict.values()) == outcome.verdicts.videos
    assert set(run[0].stage_seconds) >= {"extract", "score", "verdicts"}
    assert run[0].detect_path == ("local_gpu" if torch.cuda.is_available() else "cpu")
    assert run[0].detect_engine == ("torch" if torch.cuda.is_available() else "onnxruntime")


def _versions(spark, config):
    """The scan's tables' latest Delta versions: a write that changes no row still makes one."""
    tables = (VIDEOS, EXTRACTIONS, FACES, FACE_SCORES, VERDICTS, SCAN_RUNS)
    return {table.name: table_version(spark, config.lake.schema_name, table) for table in tables}


def test_rerunning_the_same_date_and_model_changes_nothing(spark, config, rescan, first_scan):
    tables = ("videos", "extractions", "faces", "face_scores", "verdicts", "scan_runs")
    before, versions = {table: _snapshot(spark, config, table) for table in tables}, _versions(spark, config)
    again = run_scan(spark, config, rescan)
    assert again.verdicts.videos == 0
    assert again.verdicts.listed == ()
    assert {table: _snapshot(spark, config, table) for table in tables} == before
    assert _versions(spark, config) == versions  # nothing committed, no file rewritten


@pytest.mark.skipif(visible_cuda_devices() > 0, reason="the failing run asks for a GPU, which this machine has")
def test_a_failed_run_is_recorded_then_replaced_by_its_retry_and_never_replaces_a_success(spark, config, first_scan):
    on_missing_gpu = config.model_copy(update={"detect": config.detect.model_copy(update={"device": "cuda"})})
    request = ScanRequest(scan_date=date(2026, 11, 23), trigger="test")

    def recorded():
        runs = spark.table(f"{config.lake.schema_name}.scan_runs").where(F.col("scan_date") == request.scan_date)
        return [(row.status, (row.error or "").split(":")[0]) for row in runs.collect()]

    with pytest.raises(GpuSchedulingError):
        run_scan(spark, on_missing_gpu, request)
    assert recorded() == [("failed", "GpuSchedulingError")]
    run_scan(spark, config, request)  # the retry, same run id
    assert recorded() == [("succeeded", "")]
    versions = _versions(spark, config)
    with pytest.raises(GpuSchedulingError):
        run_scan(spark, on_missing_gpu, request)
    assert recorded() == [("succeeded", "")]
    assert _versions(spark, config) == versions


def test_another_cpu_engine_rescores_nothing(spark, config, rescan, first_scan):
    """Scores are keyed by model and crops, not by what ran the network: switching engines adds no rows."""
    tables = ("face_scores", "verdicts", "scan_runs")
    before = {table: _snapshot(spark, config, table) for table in tables}
    on_torch = config.model_copy(update={"detect": config.detect.model_copy(update={"cpu_engine": "torch"})})
    again = run_scan(spark, on_torch, rescan)
    assert again.verdicts.videos == 0
    assert {table: _snapshot(spark, config, table) for table in tables} == before


def test_rescore_adds_the_second_version_and_leaves_the_first(spark, config, first_scan):
    model, _ = first_scan
    schema = config.lake.schema_name
    first_rows = spark.table(f"{schema}.verdicts").where(F.col("model_version") == model.version)
    before = sorted(tuple(r) for r in first_rows.drop("scanned_at").collect())
    extracted_before = spark.table(f"{schema}.extractions").count()

    second = _register(config, seed=2)
    resolved = DetectorRegistry(config.mlflow, config.home).resolve(str(second.version))  # as `deepsift rescore` does
    outcome = rescore(spark, config, str(second.version), date(2026, 11, 21), info=resolved)
    assert outcome.model.version == second.version
    assert spark.table(f"{schema}.extractions").count() == extracted_before  # nothing decoded again
    second_rows = spark.table(f"{schema}.verdicts").where(F.col("model_version") == second.version)
    assert second_rows.count() == first_rows.count()
    assert sorted(tuple(r) for r in first_rows.drop("scanned_at").collect()) == before


def test_rescore_with_a_contract_whose_crops_were_never_extracted_is_refused(spark, config, first_scan):
    other = _register(config, seed=3, input_size=96)
    with pytest.raises(ContractMismatchError, match="96 px"):
        rescore(spark, config, str(other.version), date(2026, 11, 21))


def test_a_configured_setting_the_model_was_not_trained_for_is_refused_before_any_spark_job(
    spark, config, media_dir, first_scan
):
    model, _ = first_scan
    smaller = config.model_copy(update={"faces": config.faces.model_copy(update={"detect_max_side": 320})})
    before = {table: _snapshot(spark, config, table) for table in ("videos", "scan_runs")}
    jobs_before = spark.sparkContext.statusTracker().getJobIdsForGroup()
    with pytest.raises(ContractSettingError, match=rf"faces.detect_max_side is 320, but {model.model_uri} was trained for 640"):
        run_scan(spark, smaller, ScanRequest(scan_date=date(2026, 11, 22), inputs=[str(media_dir / "faces")], trigger="test"))
    assert spark.sparkContext.statusTracker().getJobIdsForGroup() == jobs_before
    assert {table: _snapshot(spark, config, table) for table in ("videos", "scan_runs")} == before
