"""The scoring cascade through the score and verdict stages, on real Spark, Delta and MLflow.

The extraction rows of ``test_score_verdicts`` (a video with six faces on four frames, one without a
face, one that failed), in this module's own schema. Three versions share one seeded network and
differ in their contract: a cascade whose thresholds the first pass (frames 1 and 3) settles, a
cascade whose first pass lands in the doubtful band, and no cascade. Each is scored and judged, the
settled one also judged before any scoring and scored and judged twice.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.scoring import FaceScorer
from deepsift.faces.crops import decode_crop
from deepsift.lake.tables import FACE_SCORES, VERDICTS
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.stages.score import ScoringRun, score_faces
from deepsift.stages.verdicts import write_verdicts
from deepsift.verdicts.cascade import Cascade, first_pass
from deepsift.verdicts.labels import Thresholds

from .test_score_verdicts import (  # noqa: F401 (encoded_crops is a fixture)
    ARCHITECTURE,
    BROKEN,
    FACE_KEYS,
    FACED,
    FACELESS,
    PP,
    SCAN_DATE,
    SIZE,
    _frames,
    _snapshot,
    _write_extraction_rows,
    encoded_crops,
)

CASCADE = Cascade(first_frames=2, margin=0.05)
FIRST_PASS_KEYS = [(1, 0), (3, 0), (3, 1)]
"""The faces of frames 1 and 3: the middle frames of the two halves of frames 0 to 3."""


@pytest.fixture(scope="module")
def config(lake_config: Config) -> Config:
    mlflow = lake_config.mlflow.model_copy(update={"registered_model": "t-score-cascade"})
    return lake_config.model_copy(update={"mlflow": mlflow})


def _register(registry: DetectorRegistry, thresholds: Thresholds, cascade: Cascade | None) -> ModelVersionInfo:
    torch.manual_seed(1234)
    network = build_detector_network(ARCHITECTURE).eval()
    contract = architecture_spec(ARCHITECTURE).default_contract(input_size=SIZE).model_copy(
        update={"aggregation": "mean", "thresholds": thresholds, "cascade": cascade}
    )
    return registry.log_and_register(network.state_dict(), contract, {"auc": 0.5}, "# test detector")


@pytest.fixture(scope="module")
def cascade(spark, config: Config, encoded_crops: list[bytes]) -> SimpleNamespace:  # noqa: F811
    _write_extraction_rows(spark, config, encoded_crops)
    crops = np.stack([decode_crop(crop) for crop in encoded_crops])
    torch.manual_seed(1234)
    network = build_detector_network(ARCHITECTURE).eval()
    faces = FaceScorer(network, architecture_spec(ARCHITECTURE).default_contract(input_size=SIZE), "cpu").score(crops)
    first = float(faces[first_pass(_frames(), CASCADE.first_frames)].mean())
    registry = DetectorRegistry(config.mlflow, config.home)
    settled = _register(registry, Thresholds(suspicious=min(1.0, first + 0.1), manipulated=1.0), CASCADE)
    doubtful = _register(registry, Thresholds(suspicious=first, manipulated=first), CASCADE)
    plain = _register(registry, Thresholds(suspicious=first, manipulated=first), None)
    every = spark.createDataFrame([(v,) for v in (FACED, FACELESS, BROKEN)], "video_id string")
    runs = {model.version: ScoringRun(model, PP, SCAN_DATE, every) for model in (settled, doubtful, plain)}
    summaries = {}
    early = write_verdicts(spark, config, runs[settled.version])
    for version, run in runs.items():
        summaries[version] = score_faces(spark, config, run)
        write_verdicts(spark, config, run)
        if version == settled.version:
            once = _snapshot(spark, config)
            rescored = score_faces(spark, config, run)
            rejudged = write_verdicts(spark, config, run)
            twice = _snapshot(spark, config)
    return SimpleNamespace(
        faces=faces, first=first, settled=settled.version, doubtful=doubtful.version, plain=plain.version,
        early=early, summaries=summaries, once=once, twice=twice, rescored=rescored, rejudged=rejudged,
    )


def _verdict(spark, config: Config, video_id: str, version: int) -> dict:
    (row,) = (
        spark.table(VERDICTS.qualified(config.lake.schema_name))
        .where((F.col("video_id") == video_id) & (F.col("model_version") == version))
        .collect()
    )
    return row.asDict()


def _scored_keys(spark, config: Config, version: int) -> list[tuple[int, int]]:
    rows = (
        spark.table(FACE_SCORES.qualified(config.lake.schema_name))
        .where(F.col("model_version") == version)
        .orderBy("video_id", "frame_index", "face_index")
        .collect()
    )
    assert {row.video_id for row in rows} == {FACED}
    return [(row.frame_index, row.face_index) for row in rows]


def test_a_settled_video_is_judged_on_its_first_pass_and_its_other_faces_are_never_scored(spark, config, cascade):
    assert _scored_keys(spark, config, cascade.settled) == FIRST_PASS_KEYS
    assert cascade.summaries[cascade.settled].faces == len(FIRST_PASS_KEYS)
    row = _verdict(spark, config, FACED, cascade.settled)
    assert (row["verdict"], row["n_frames_scored"], row["n_faces"], row["n_frames"]) == ("authentic", 2, len(FACE_KEYS), 4)
    assert row["score"] == pytest.approx(cascade.first, abs=1e-5)


def test_a_doubtful_first_pass_scores_every_face_like_no_cascade(spark, config, cascade):
    for version in (cascade.doubtful, cascade.plain):
        assert _scored_keys(spark, config, version) == FACE_KEYS
        assert cascade.summaries[version].faces == len(FACE_KEYS)
        row = _verdict(spark, config, FACED, version)
        full = float(cascade.faces.mean())
        expected = "manipulated" if row["score"] >= cascade.first else "authentic"  # one threshold: the first pass's score
        assert (row["verdict"], row["n_frames_scored"], row["n_faces"]) == (expected, 4, len(FACE_KEYS))
        assert row["score"] == pytest.approx(full, abs=1e-5)


def test_before_its_first_pass_is_scored_a_video_waits_for_it(cascade):
    assert cascade.early.unscored == 1
    assert cascade.early.by_verdict == {"not_applicable": 1, "error": 1}


def test_videos_without_a_score_record_no_frame_scored(spark, config, cascade):
    for version in (cascade.settled, cascade.doubtful, cascade.plain):
        assert _verdict(spark, config, FACELESS, version)["n_frames_scored"] == 0
        assert _verdict(spark, config, BROKEN, version)["n_frames_scored"] == 0


def test_rerunning_a_cascaded_scan_scores_nothing_and_changes_no_table(cascade):
    assert cascade.twice == cascade.once
    assert cascade.rescored.faces == 0
    assert cascade.rejudged.unscored == 0
    assert cascade.rejudged.by_verdict == {"authentic": 1, "not_applicable": 1, "error": 1}
