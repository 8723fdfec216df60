"""Scoring and verdicts on real Spark, Delta and MLflow, over hand-made extraction rows.

Three videos at one preprocess version: one with six face crops (synthetic images, encoded as the
extractor encodes them), one extracted with no face, one that failed with ``decode_error``. Two tiny
detector versions are registered in the embedded MLflow store under this module's own model name.
The module fixture runs the whole sequence once (verdicts before scoring, score, verdicts, a rerun,
a second version) and keeps a snapshot of the tables after each step for the tests to compare.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import date, datetime
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.arrow_scoring import score_crop_batches
from deepsift.detect.devices import DETECT_OUTPUT_SCHEMA, detect_udf
from deepsift.detect.scoring import FaceScorer
from deepsift.faces.crops import decode_crop, encode_crop
from deepsift.files import file_sha256
from deepsift.lake.tables import EXTRACTION_TABLES, EXTRACTIONS, FACE_SCORES, FACES, VERDICTS, ensure_tables
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.registry.version_files import KEPT_SHIPPED_FILES, shared_scorer, ship_version, shipped_scorer_loader
from deepsift.stages.score import ScoringRun, scan_run_id, score_faces, sized_for_detect
from deepsift.stages.verdicts import reaggregate, write_verdicts
from deepsift.verdicts.aggregation import UnknownAggregationError, aggregate
from deepsift.verdicts.labels import Thresholds, verdict_for

ARCHITECTURE = "mobilenetv3_small_050"
SIZE = 64
PP, OTHER_PP = "pp-test", "pp-other"
SCAN_DATE = date(2026, 11, 26)
FACED, FACELESS, BROKEN, UNKNOWN = "vid-faces", "vid-no-face", "vid-broken", "vid-never-extracted"
FACE_KEYS = [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0), (3, 1)]
"""(frame_index, face_index) of the crops of ``FACED``: two frames with two faces each."""
RULES = {1: "mean", 2: "max_face_per_frame_mean"}
SEEDS = {1: 1234, 2: 99}


@pytest.fixture(scope="module")
def config(lake_config: Config) -> Config:
    """The module's schema, and a registered model name of its own in the embedded MLflow store."""
    mlflow = lake_config.mlflow.model_copy(update={"registered_model": "t-score-verdicts"})
    return lake_config.model_copy(update={"mlflow": mlflow})


@pytest.fixture(scope="module")
def encoded_crops() -> list[bytes]:
    rng = np.random.default_rng(7)
    images = [
        np.clip(rng.normal(128 + 20 * i, 40, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8) for i in range(len(FACE_KEYS))
    ]
    return [encode_crop(image, "jpeg", 95) for image in images]


def _write_extraction_rows(spark, config: Config, crops: list[bytes]) -> None:
    schema = config.lake.schema_name
    ensure_tables(spark, schema, EXTRACTION_TABLES)
    now = datetime(2026, 11, 26, 1, 0)
    extractions = [
        (FACED, PP, "ok", None, None, "yunet", "keyframes", 4, len(FACE_KEYS), 0.1, 0.1, now),
        (FACELESS, PP, "ok", None, None, "yunet", "keyframes", 4, 0, 0.1, 0.1, now),
        (BROKEN, PP, "error", "decode_error", "decoder crashed", None, None, None, 0, None, None, now),
    ]
    spark.createDataFrame(extractions, EXTRACTIONS.columns).write.insertInto(EXTRACTIONS.qualified(schema))
    bbox = {"x": 1.0, "y": 2.0, "w": 30.0, "h": 30.0}
    faces = [
        (FACED, PP, frame, face, frame * 0.5, bbox, 0.9, "jpeg", crop) for (frame, face), crop in zip(FACE_KEYS, crops, strict=True)
    ]
    faces.append((FACED, OTHER_PP, 9, 0, 4.5, bbox, 0.9, "jpeg", crops[0]))  # another version: never scored here
    spark.createDataFrame(faces, FACES.columns).write.insertInto(FACES.qualified(schema))


def _register(registry: DetectorRegistry, version_seed: int, rule: str, crops: np.ndarray) -> ModelVersionInfo:
    """A seeded random detector whose thresholds put its own video score in a known band."""
    torch.manual_seed(version_seed)
    network = build_detector_network(ARCHITECTURE).eval()
    contract = architecture_spec(ARCHITECTURE).default_contract(input_size=SIZE)
    video_score = aggregate(rule, FaceScorer(network, contract, "cpu").score(crops), _frames())
    # v1 lands in the suspicious band, v2 above the manipulated threshold.
    if rule == RULES[1]:
        low, high = max(0.0, video_score - 0.01), min(1.0, video_score + 0.01)
    else:
        low = high = max(0.0, video_score - 0.01)
    thresholds = Thresholds(suspicious=low, manipulated=high)
    contract = contract.model_copy(update={"aggregation": rule, "thresholds": thresholds})
    return registry.log_and_register(network.state_dict(), contract, {"auc": 0.5}, "# test detector")


def _frames() -> np.ndarray:
    return np.array([frame for frame, _ in FACE_KEYS])


def _snapshot(spark, config: Config) -> dict[str, list[tuple]]:
    schema = config.lake.schema_name
    return {
        table.name: sorted(tuple(row) for row in spark.table(table.qualified(schema)).collect())
        for table in (EXTRACTIONS, FACES, FACE_SCORES, VERDICTS)
    }


@pytest.fixture(scope="module")
def scan(spark, config: Config, encoded_crops: list[bytes]) -> SimpleNamespace:
    _write_extraction_rows(spark, config, encoded_crops)
    crops = np.stack([decode_crop(crop) for crop in encoded_crops])
    registry = DetectorRegistry(config.mlflow, config.home)
    v1, v2 = (_register(registry, SEEDS[n], RULES[n], crops) for n in (1, 2))
    every = spark.createDataFrame([(v,) for v in (FACED, FACELESS, BROKEN, UNKNOWN)], "video_id string")

    pending_v1, every_v1, every_v2 = ScoringRun(v1, PP, SCAN_DATE), ScoringRun(v1, PP, SCAN_DATE, every), ScoringRun(v2, PP, SCAN_DATE, every)

    early = write_verdicts(spark, config, pending_v1)
    early_verdicts = {row.video_id for row in spark.table(VERDICTS.qualified(config.lake.schema_name)).collect()}
    scored = score_faces(spark, config, pending_v1)
    judged = write_verdicts(spark, config, pending_v1)
    first = _snapshot(spark, config)
    rescored = score_faces(spark, config, every_v1)
    rejudged = write_verdicts(spark, config, every_v1)
    again = _snapshot(spark, config)
    score_faces(spark, config, every_v2)
    write_verdicts(spark, config, every_v2)
    return SimpleNamespace(
        registry=registry, crops=crops, v1=v1, v2=v2, early=early, early_verdicts=early_verdicts, scored=scored,
        judged=judged, first=first, rescored=rescored, rejudged=rejudged, again=again, last=_snapshot(spark, config),
    )


def _verdicts(spark, config: Config) -> dict[tuple[str, int], dict]:
    rows = spark.table(VERDICTS.qualified(config.lake.schema_name)).collect()
    keyed = {(row.video_id, row.model_version): row.asDict() for row in rows}
    assert len(keyed) == len(rows), "more than one verdict for a video and model version"
    return keyed


def _stored_scores(spark, config: Config, version: int) -> np.ndarray:
    rows = (
        spark.table(FACE_SCORES.qualified(config.lake.schema_name))
        .where((F.col("model_version") == version) & (F.col("video_id") == FACED))
        .orderBy("frame_index", "face_index")
        .collect()
    )
    assert [(r.frame_index, r.face_index) for r in rows] == FACE_KEYS
    return np.array([r.score for r in rows], dtype=np.float32)


def test_one_verdict_per_video_and_version_with_typed_reasons(spark, config, scan):
    verdicts = _verdicts(spark, config)
    assert sorted(verdicts) == sorted((video, version) for video in (FACED, FACELESS, BROKEN) for version in (1, 2))
    for version in (1, 2):
        faceless, broken = verdicts[(FACELESS, version)], verdicts[(BROKEN, version)]
        assert (faceless["verdict"], faceless["reason"], faceless["score"]) == ("not_applicable", "no_face", None)
        assert (faceless["n_frames"], faceless["n_faces"]) == (4, 0)
        assert (broken["verdict"], broken["reason"]) == ("error", "decode_error")
        assert (broken["score"], broken["aggregation"]) == (None, None)
    assert scan.rejudged.not_extracted == 1 and scan.rejudged.unscored == 0
    assert scan.judged.by_verdict == {"suspicious": 1} and scan.judged.by_reason == {}


def test_video_score_is_the_contract_rule_over_in_process_scores(spark, config, scan):
    verdicts = _verdicts(spark, config)
    for version, expected_verdict in ((1, "suspicious"), (2, "manipulated")):
        in_process = scan.registry.load_scorer(version, device="cpu").score(scan.crops)
        np.testing.assert_allclose(_stored_scores(spark, config, version), in_process, atol=1e-5)
        row = verdicts[(FACED, version)]
        assert row["score"] == pytest.approx(aggregate(RULES[version], in_process, _frames()), abs=1e-5)
        assert (row["verdict"], row["reason"], row["aggregation"]) == (expected_verdict, None, RULES[version])
        assert (row["n_frames"], row["n_faces"], row["scan_date"]) == (4, len(FACE_KEYS), SCAN_DATE)
        assert row["run_id"] == scan_run_id(SCAN_DATE, "t-score-verdicts", version, PP)
    scored = spark.table(FACE_SCORES.qualified(config.lake.schema_name))
    assert scored.where(F.col("preprocess_version") == OTHER_PP).count() == 0
    assert scored.count() == 2 * len(FACE_KEYS)
    assert (scan.scored.videos, scan.scored.faces) == (1, len(FACE_KEYS))


def test_a_video_with_faces_waits_for_its_scores(scan):
    """Verdicts before scoring label what needs no model and leave the faced video for later."""
    assert scan.early.unscored == 1
    assert scan.early.by_verdict == {"not_applicable": 1, "error": 1}
    assert scan.early.by_reason == {"no_face": 1, "decode_error": 1}
    assert scan.early_verdicts == {FACELESS, BROKEN}


def test_rerunning_the_same_scan_changes_no_table(scan):
    assert scan.again == scan.first
    assert scan.rescored.faces == 0
    assert scan.rejudged.by_verdict == {"suspicious": 1, "not_applicable": 1, "error": 1}


def test_a_second_version_adds_its_own_rows_only(scan):
    for table, rows in scan.first.items():
        columns = {spec.name: spec.column_names() for spec in (EXTRACTIONS, FACES, FACE_SCORES, VERDICTS)}[table]
        version = columns.index("model_version") if "model_version" in columns else None
        kept = [row for row in scan.last[table] if version is None or row[version] == 1]
        assert kept == rows, table
    assert len(scan.last["verdicts"]) == 2 * len(scan.first["verdicts"])


def test_reaggregate_replays_another_rule_from_stored_scores(spark, config, scan):
    replayed = reaggregate(spark, config, scan.v1, PP, "max").collect()
    assert [row.video_id for row in replayed] == [FACED]
    row = replayed[0]
    assert row.score == pytest.approx(float(_stored_scores(spark, config, 1).max()), abs=1e-7)
    expected, _ = verdict_for(row.score, scan.v1.contract.thresholds, "ok", None, len(FACE_KEYS))
    assert (row.aggregation, row.n_faces, row.model_version, row.verdict) == ("max", len(FACE_KEYS), 1, expected)
    with pytest.raises(UnknownAggregationError, match="known: confident"):
        reaggregate(spark, config, scan.v1, PP, "median")


def test_reaggregate_on_one_scan_date_reads_only_that_date(spark, config, scan):
    """``deepsift reaggregate --date D``: the date's scores alone; a date without scores gives no rows."""
    latest = sorted(tuple(row) for row in reaggregate(spark, config, scan.v1, PP, "mean").collect())
    that_day = sorted(tuple(row) for row in reaggregate(spark, config, scan.v1, PP, "mean", SCAN_DATE).collect())
    assert that_day == latest and [row[0] for row in that_day] == [FACED]
    assert reaggregate(spark, config, scan.v1, PP, "mean", date(2026, 11, 25)).count() == 0


def test_executors_score_in_fixed_batches_with_one_loaded_model(scan, encoded_crops, tmp_path):
    """Arrow batches of 3, 1 and 2 crops become forward batches of 4 and 2, scored by one warm model."""
    files = scan.registry.version_files(scan.v1.version, tmp_path)
    arrow = []
    for start, stop in ((0, 3), (3, 4), (4, 6)):
        keys = FACE_KEYS[start:stop]
        arrow.append(pa.RecordBatch.from_pydict({
            "video_id": [FACED] * len(keys),
            "frame_index": pa.array([frame for frame, _ in keys], pa.int32()),
            "face_index": pa.array([face for _, face in keys], pa.int32()),
            "crop": encoded_crops[start:stop],
        }))
    scored = list(score_crop_batches(iter(arrow), lambda: shared_scorer(files), batch_size=4))
    assert [batch.num_rows for batch in scored] == [4, 2]
    table = pa.Table.from_batches(scored)
    assert list(zip(table["frame_index"].to_pylist(), table["face_index"].to_pylist(), strict=True)) == FACE_KEYS
    expected = scan.registry.load_scorer(scan.v1.version, device="cpu").score(scan.crops)
    np.testing.assert_allclose(table["score"].to_numpy(), expected, atol=1e-6)
    assert shared_scorer(files) is shared_scorer(files)
    assert list(score_crop_batches(iter([]), lambda: shared_scorer(files), batch_size=4)) == []


def test_executors_score_from_the_shipped_files_without_the_mlflow_store(
    spark, config, scan, encoded_crops, tmp_path
):
    """The driver ships a version's two files once per SparkContext under names made of their content; a
    detect job scores from the executors' copies with the store out of reach (a store URI that does not
    exist), as on executors that cannot reach the tracking server, and scores what the registry does."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    for stale in range(KEPT_SHIPPED_FILES):  # files of versions shipped before, all less recent
        (folder / f"{stale:032x}.state_dict.pt").write_bytes(b"old weights")
        os.utime(folder / f"{stale:032x}.state_dict.pt", (1_000_000 + stale, 1_000_000 + stale))
    files = scan.registry.version_files(scan.v1.version, tmp_path / "download")
    shipped = ship_version(spark, files, folder)
    assert ship_version(spark, files, folder) == shipped
    names = {f"{file_sha256(path)[:32]}.{path.name}" for path in (files.state_dict, files.contract)}
    assert {shipped.state_dict_name, shipped.contract_name} == names
    added = [uri.rsplit("/", 1)[-1] for uri in spark.sparkContext.listFiles]
    assert sorted(name for name in added if name in names) == sorted(names)
    kept = {path.name for path in folder.iterdir()}
    assert len(kept) == KEPT_SHIPPED_FILES and names <= kept
    assert f"{0:032x}.state_dict.pt" not in kept and f"{KEPT_SHIPPED_FILES - 1:032x}.state_dict.pt" in kept

    nowhere = f"sqlite:///{tmp_path / 'no-such-store' / 'mlflow.db'}"
    unreachable = dataclasses.replace(shipped, tracking_uri=nowhere, registry_uri=nowhere)
    crops = spark.createDataFrame(
        [(FACED, frame, face, crop) for (frame, face), crop in zip(FACE_KEYS, encoded_crops, strict=True)],
        "video_id string, frame_index int, face_index int, crop binary",
    ).repartition(2)
    detect = detect_udf(shipped_scorer_loader(unreachable, "torch"), config.detect)
    rows = crops.mapInArrow(detect, DETECT_OUTPUT_SCHEMA).orderBy("frame_index", "face_index").collect()
    assert [(row.frame_index, row.face_index) for row in rows] == FACE_KEYS
    expected = scan.registry.load_scorer(scan.v1.version, device="cpu").score(scan.crops)
    np.testing.assert_allclose([row.score for row in rows], expected, atol=1e-6)
    assert not (tmp_path / "no-such-store").exists()


def test_detect_tasks_are_sized_by_the_crops_bytes(spark):
    """A few crops are one detect task (one Python worker loads the model); megabytes of crops are one
    task per core. The crops are random bytes, as incompressible in the shuffle as JPEG."""

    def tasks(crops: int, crop_bytes: int) -> int:
        rows = [(index, os.urandom(crop_bytes)) for index in range(crops)]
        faces = spark.createDataFrame(rows, "face_index int, crop binary").repartition(8)
        scored = sized_for_detect(faces).mapInArrow(lambda batches: batches, faces.schema)
        return scored.checkpoint(eager=True).rdd.getNumPartitions()

    assert tasks(32, 3_000) == 1
    assert tasks(400, 20_000) == spark.sparkContext.defaultParallelism == 2
