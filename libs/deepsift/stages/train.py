"""Training, evaluation and registration of detectors from the lakehouse's face crops.

The crops a model trains on are extracted under the model's own preprocessing contract (crop size,
margin, face detector, frames per video), the same crops the scan will feed it; extraction reuses
cached crops when the settings match. Crops are read from a pinned snapshot of the ``faces`` Delta
table with delta-rs (``deltalake``), whose table version is logged with the model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.evaluation import EvaluationReport, VideoFaces, evaluate_detector
from deepsift.detect.scoring import FaceScorer
from deepsift.detect.selfblend import self_blend
from deepsift.detect.training import CropExample, TrainingSettings, train_detector, with_self_blended_fakes
from deepsift.faces.crops import decode_crop
from deepsift.lake.tables import EXTRACTIONS, FACES, VIDEOS
from deepsift.registry.errors import ModelNotFoundError
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.stages.extract import extract_pending

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSelection:
    """Which videos' crops to use: ingest dates, a URI prefix, and a labels table (video_id, label)."""

    since: date | None = None
    until: date | None = None
    uri_prefix: str | None = None
    labels_table: str | None = None
    """A table or view with ``video_id`` and ``label`` (1 manipulated, 0 authentic), e.g. moderator decisions."""


@dataclass(frozen=True)
class TrainRequest:
    architecture: str = "mobilenetv3_small_050"
    input_size: int | None = None
    """Crop size in pixels; None takes the architecture's default."""
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    selection: DataSelection = field(default_factory=DataSelection)
    alias: str | None = "challenger"
    suspicious_fpr: float = 0.01
    manipulated_fpr: float = 0.001


@dataclass(frozen=True)
class TrainOutcome:
    version: ModelVersionInfo
    report: EvaluationReport
    history: list[dict[str, float]]
    n_train_videos: int
    n_validation_videos: int
    n_crops: int
    seconds: float


def contract_for(config: Config, architecture: str, input_size: int | None = None) -> PreprocessContract:
    """A new model's contract: the architecture's defaults with the deployment's face settings."""
    spec = architecture_spec(architecture)
    return spec.default_contract(
        input_size=input_size or spec.default_input_size,
        crop_margin=config.faces.margin,
        face_detector=config.faces.detector,
        frames_per_video=config.sampling.frames_per_video,
    )


def config_for_contract(config: Config, contract: PreprocessContract) -> Config:
    """The deployment config with the face and sampling settings a model's contract requires."""
    faces = config.faces.model_copy(
        update={"crop_size": contract.input_size, "margin": contract.crop_margin, "detector": contract.face_detector}
    )
    sampling = config.sampling.model_copy(update={"frames_per_video": contract.frames_per_video})
    return config.model_copy(update={"faces": faces, "sampling": sampling})


def train_and_register(spark: SparkSession, config: Config, request: TrainRequest) -> TrainOutcome:
    """Extract (or reuse) crops under the new contract, train, evaluate on held-out videos, register.

    The held-out videos are evaluated at video level: each authentic video, plus a self-blended
    copy of it as a pseudo-fake, plus any labelled fakes among them. Thresholds are chosen on that
    set for the requested false-positive rates and saved in the version's contract.
    """
    started = time.perf_counter()
    contract = contract_for(config, request.architecture, request.input_size)
    model_config = config_for_contract(config, contract)
    extraction = extract_pending(spark, model_config)
    labelled = _labelled_videos(spark, model_config, extraction.preprocess_version, request.selection)
    faces, table_version = _read_crops(spark, model_config, extraction.preprocess_version, labelled)
    examples = [
        CropExample(video_id, crop, labelled[video_id])
        for video_id, crops in faces.items()
        for _, crop in crops
    ]
    result = train_detector(with_self_blended_fakes(examples), contract, request.settings)
    validation = _validation_videos(result.validation_videos, faces, labelled, request.settings.seed)

    registry = DetectorRegistry(config.mlflow, config.home)
    with tempfile.TemporaryDirectory() as scratch:
        network = build_detector_network(contract.architecture)
        network.load_state_dict(result.state_dict)
        report = evaluate_detector(
            FaceScorer(network, contract, device="cpu"),
            validation,
            artifacts_dir=Path(scratch),
            suspicious_fpr=request.suspicious_fpr,
            manipulated_fpr=request.manipulated_fpr,
        )
        final_contract = contract.model_copy(update={"thresholds": report.thresholds})
        version = registry.log_and_register(
            result.state_dict,
            final_contract,
            report.metrics,
            model_card(final_contract, report, result.history, len(result.train_videos), len(faces), table_version),
            run_name=f"train {contract.architecture}",
            params={
                "architecture": contract.architecture,
                "input_size": contract.input_size,
                "preprocess_version": extraction.preprocess_version,
                "faces_table_version": table_version,
                "epochs": request.settings.epochs,
                "batch_size": request.settings.batch_size,
                "learning_rate": request.settings.learning_rate,
                "seed": request.settings.seed,
                "train_videos": len(result.train_videos),
                "validation_videos": len(result.validation_videos),
            },
            eval_set_id=report.eval_set_id,
        )
        _log_history(registry, version.run_id, result.history)
        registry.record_evaluation(version.version, report.metrics, report.eval_set_id, [report.roc_path, report.histogram_path])
    if request.alias:
        version = registry.set_alias(request.alias, version.version)
    return TrainOutcome(
        version=version,
        report=report,
        history=result.history,
        n_train_videos=len(result.train_videos),
        n_validation_videos=len(result.validation_videos),
        n_crops=len(examples),
        seconds=time.perf_counter() - started,
    )


def _labelled_videos(spark: SparkSession, config: Config, version: str, selection: DataSelection) -> dict[str, int]:
    """video_id -> label for every selected video that has crops at ``version``; unlabelled ones are real."""
    schema = config.lake.schema_name
    videos = spark.table(VIDEOS.qualified(schema))
    if selection.since:
        videos = videos.where(F.col("ingest_date") >= F.lit(selection.since))
    if selection.until:
        videos = videos.where(F.col("ingest_date") <= F.lit(selection.until))
    if selection.uri_prefix:
        videos = videos.where(F.exists("uris", lambda uri: uri.startswith(selection.uri_prefix)))
    extracted = spark.table(EXTRACTIONS.qualified(schema)).where(
        (F.col("preprocess_version") == version) & (F.col("n_faces") > 0)
    )
    chosen = videos.join(extracted, "video_id").select("video_id")
    if selection.labels_table:
        labels = spark.table(selection.labels_table).select("video_id", F.col("label").cast("int"))
        chosen = chosen.join(labels, "video_id", "left")
    else:
        chosen = chosen.withColumn("label", F.lit(None).cast("int"))
    return {row.video_id: int(row.label or 0) for row in chosen.collect()}


def _read_crops(
    spark: SparkSession, config: Config, version: str, videos: dict[str, int]
) -> tuple[dict[str, list[tuple[int, bytes]]], int]:
    """Crops per video as (frame_index, encoded crop), read from one pinned Delta snapshot."""
    location = spark.sql(f"DESCRIBE DETAIL {FACES.qualified(config.lake.schema_name)}").first()["location"]
    table = DeltaTable(location.removeprefix("file:"))
    dataset = table.to_pyarrow_dataset()
    rows = dataset.to_table(
        columns=["video_id", "frame_index", "crop"],
        filter=(pads.field("preprocess_version") == version) & pads.field("video_id").isin(list(videos)),
    )
    crops: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for video_id, frame_index, crop in zip(*(rows.column(name).to_pylist() for name in rows.column_names), strict=True):
        crops[video_id].append((frame_index, crop))
    return dict(crops), table.version()


def _validation_videos(
    video_ids: list[str], faces: dict[str, list[tuple[int, bytes]]], labels: dict[str, int], seed: int
) -> list[VideoFaces]:
    """Held-out videos as they are, and each authentic one again as a self-blended pseudo-fake video."""
    videos = []
    for video_id in video_ids:
        frames = np.array([frame for frame, _ in faces[video_id]])
        crops = np.stack([decode_crop(crop) for _, crop in faces[video_id]])
        videos.append(VideoFaces(video_id, labels[video_id], crops, frames))
        if labels[video_id] == 0:
            rng = np.random.default_rng(seed)
            blended = np.stack([self_blend(crop, rng)[0] for crop in crops])
            videos.append(VideoFaces(f"{video_id}#selfblend", 1, blended, frames))
    return videos


def _log_history(registry: DetectorRegistry, run_id: str, history: list[dict[str, float]]) -> None:
    for epoch, metrics in enumerate(history):
        for name, value in metrics.items():
            registry.client.log_metric(run_id, f"epoch_{name}", value, step=epoch)


def model_card(
    contract: PreprocessContract,
    report: EvaluationReport,
    history: list[dict[str, float]],
    n_train_videos: int,
    n_videos: int,
    table_version: int,
) -> str:
    """A short, honest description of what the version saw and what it measured."""
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in sorted(report.metrics.items()))
    last = history[-1] if history else {}
    return f"""# {contract.architecture} at {contract.input_size} px

Trained from scratch (no pretrained weights) by deepsift's training job.

- Data: crops of {n_videos} videos from the `faces` table (Delta version {table_version}),
  {n_train_videos} for training; fakes are self-blended pseudo-fakes of authentic crops plus any labelled fakes.
- Held-out evaluation at video level on {report.n_videos} videos (each held-out authentic video and its
  self-blended copy): {metrics}.
- Final epoch: {", ".join(f"{k} {v:.4f}" for k, v in last.items())}.
- Thresholds chosen on the held-out set: suspicious {report.thresholds.suspicious:.4f},
  manipulated {report.thresholds.manipulated:.4f}; aggregation `{contract.aggregation}`.

Limits: self-blended pseudo-fakes approximate face swaps' blending artefacts only; with few videos the
held-out figures are in-sample for the thresholds and say little about real deepfakes. Do not promote
a version to moderate real uploads on these figures alone.
"""


def evaluate_version(
    spark: SparkSession,
    config: Config,
    version: int,
    selection: DataSelection,
    seed: int = 0,
) -> EvaluationReport:
    """Measure an existing version at its own thresholds on the selected labelled videos, and record it.

    Crops are extracted under the version's contract (reusing cached ones). Authentic videos also
    enter as self-blended pseudo-fakes. The metrics become the version's current metrics and its
    ``eval_set_id`` is updated, so that ``promote`` compares versions measured on the same set.
    """
    registry = DetectorRegistry(config.mlflow, config.home)
    scorer = registry.load_scorer(version, device="cpu")
    model_config = config_for_contract(config, scorer.contract)
    extraction = extract_pending(spark, model_config)
    labelled = _labelled_videos(spark, model_config, extraction.preprocess_version, selection)
    faces, _ = _read_crops(spark, model_config, extraction.preprocess_version, labelled)
    videos = _validation_videos(sorted(faces), faces, labelled, seed)
    with tempfile.TemporaryDirectory() as scratch:
        report = evaluate_detector(scorer, videos, artifacts_dir=Path(scratch), choose_thresholds=False)
        registry.record_evaluation(version, report.metrics, report.eval_set_id, [report.roc_path, report.histogram_path])
    return report


REFERENCE_DETECTOR = TrainRequest(
    architecture="mobilenetv3_small_050",
    input_size=128,
    settings=TrainingSettings(epochs=12, batch_size=32, seed=0),
    alias=None,
)
"""The detector a fresh installation trains for itself when no champion exists: small enough to train
from scratch on two CPU cores in well under five minutes, on whatever crops the lakehouse holds."""


def reference_contract(config: Config) -> PreprocessContract:
    return contract_for(config, REFERENCE_DETECTOR.architecture, REFERENCE_DETECTOR.input_size)


def ensure_champion(
    spark: SparkSession, config: Config, selection: DataSelection | None = None
) -> tuple[ModelVersionInfo, TrainOutcome | None]:
    """The version holding the configured alias; with none yet, train the reference detector for it
    on the ``selection`` of videos (all ingested videos by default)."""
    registry = DetectorRegistry(config.mlflow, config.home)
    try:
        return registry.resolve(config.mlflow.alias), None
    except ModelNotFoundError:
        log.warning("no @%s detector yet: training the reference detector", config.mlflow.alias)
    request = REFERENCE_DETECTOR if selection is None else replace(REFERENCE_DETECTOR, selection=selection)
    outcome = train_and_register(spark, config, request)
    return registry.set_alias(config.mlflow.alias, outcome.version.version), outcome
