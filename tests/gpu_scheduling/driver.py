"""Spark drivers for the GPU scheduling tests, run as child processes: ``driver.py SCENARIO RESULT.json ARGS``.

* ``scheduling MASTER RECORDS``: on the pseudo-GPU cluster, a decode-like stage, the detect stage
  (``detect_udf`` under the profile ``plan_detect`` builds, as ``score_faces`` runs it) and a stage
  after it, once with 1 GPU per detect task and once with 0.5; then a profile asking more GPUs than
  executors have, refused by the settings and by what the executors advertise. Then a second
  application (same JVM, to save a start) whose executors ask for more GPUs than the worker has.
* ``lake HOME``: a local session with Delta: an old ``scan_runs`` gains ``detect_path``; a missing NOT
  NULL column is refused; local mode takes no profile.

Every task records what Spark gave it (``TaskContext.resources()``) in a JSON file under RECORDS.
The detect stage's model loader is a stand-in: this machine has no GPU, so it records the device the
UDF chose and returns a tiny scorer on the CPU.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import torch
from pyspark import TaskContext
from pyspark.sql import DataFrame, SparkSession
from torch import nn

from deepsift.config import DetectConfig, load_config
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.devices import (
    DETECT_OUTPUT_SCHEMA,
    GpuSchedulingError,
    detect_udf,
    executor_gpus,
    plan_detect,
    require_gpu_executors,
)
from deepsift.detect.scoring import FaceScorer

CROP_PX = 32
CROPS = 8
PARTITIONS = 4
HOLD_S = 1.0
"""How long a detect task holds its GPU in the stand-in loader, so that tasks overlap."""
NO_EXECUTOR_WAIT_S = 3.0
CROP_SCHEMA = "video_id string, frame_index int, face_index int, crop binary"
OLD_SCAN_RUNS = """
    run_id STRING NOT NULL, trigger STRING NOT NULL, scan_date DATE NOT NULL, model_name STRING NOT NULL,
    model_version INT NOT NULL, model_uri STRING NOT NULL, preprocess_version STRING NOT NULL, config STRING,
    videos BIGINT, counts_by_verdict MAP<STRING, BIGINT>, counts_by_reason MAP<STRING, BIGINT>,
    stage_seconds MAP<STRING, DOUBLE>, status STRING NOT NULL, error STRING, started_at TIMESTAMP,
    finished_at TIMESTAMP
"""
"""``scan_runs`` as lakes created before ``detect_path`` hold it."""
EXTRACTIONS_WITHOUT_STATUS = "video_id STRING NOT NULL, preprocess_version STRING NOT NULL, reason STRING"


def record_task(records: str, kind: str, **fields: object) -> None:
    """Write what Spark gave the running task (its stage, partition, resources) to a file of its own."""
    context = TaskContext.get()
    entry = {
        "kind": kind,
        "stage": context.stageId(),
        "partition": context.partitionId(),
        "attempt": context.attemptNumber(),
        "resources": {name: list(info.addresses) for name, info in context.resources().items()},
        **fields,
    }
    Path(records, f"{kind}-{uuid.uuid4().hex}.json").write_text(json.dumps(entry))


def decode_stage(records: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A stand-in for the decode and face stages: turns ids into encoded crops, recording its task."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        record_task(records, "decode")
        for batch in batches:
            ids = batch.column("id").to_pylist()
            crops = [cv2.imencode(".png", np.full((CROP_PX, CROP_PX, 3), i * 20, np.uint8))[1].tobytes() for i in ids]
            yield pa.RecordBatch.from_pydict({
                "video_id": [f"video-{i % 3}" for i in ids],
                "frame_index": pa.array(ids, pa.int32()),
                "face_index": pa.array([0] * len(ids), pa.int32()),
                "crop": pa.array(crops, pa.binary()),
            })

    return run


def after_stage(records: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A stage after detect (like verdicts): passes rows through, recording its task."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        record_task(records, "after")
        yield from batches

    return run


def recording_loader(records: str) -> Callable[[str], FaceScorer]:
    """Stand-in for ``shared_scorer`` (no GPU here): records the device asked for, scores on the CPU."""
    loaded: dict[str, FaceScorer] = {}

    def load(device: str) -> FaceScorer:
        if device not in loaded:
            started = time.time()
            time.sleep(HOLD_S)
            record_task(records, "detect", device=device, start=started, end=time.time())
            torch.manual_seed(0)
            contract = PreprocessContract(architecture="mobilenetv3_small_050", input_size=CROP_PX)
            network = nn.Sequential(nn.Flatten(), nn.Linear(3 * CROP_PX * CROP_PX, 1))
            loaded[device] = FaceScorer(network, contract, device="cpu")
        return loaded[device]

    return load


def run_stages(spark: SparkSession, detect: DetectConfig, records: Path) -> list[dict[str, object]]:
    """decode -> detect (under ``plan_detect``'s profile) -> after; returns the rows.

    The detect UDF is told torch sees two CUDA devices, one per pseudo-GPU address: a stand-in.
    """
    records.mkdir(parents=True, exist_ok=True)
    profile = plan_detect(spark, detect)
    crops = spark.range(0, CROPS, numPartitions=PARTITIONS).mapInArrow(decode_stage(str(records)), CROP_SCHEMA)
    scored: DataFrame = crops.repartition(PARTITIONS).mapInArrow(
        detect_udf(
            recording_loader(str(records)), detect.model_copy(update={"gpu_batch_size": 4}), cuda_devices=lambda: 2
        ),
        DETECT_OUTPUT_SCHEMA,
        profile=profile,
    )
    after = scored.repartition(2).mapInArrow(after_stage(str(records)), DETECT_OUTPUT_SCHEMA)
    return [row.asDict() for row in after.collect()]


def cluster_session(master: str, executor_gpus_each: str) -> SparkSession:
    return (
        SparkSession.builder.master(master)
        .appName("gpu-scheduling-test")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")  # the worker listens on 127.0.0.1 only
        .config("spark.executor.cores", "2")
        .config("spark.executor.memory", "512m")
        .config("spark.executor.resource.gpu.amount", executor_gpus_each)
        .getOrCreate()
    )


def scheduling(master: str, records: str) -> dict[str, object]:
    spark = cluster_session(master, "2")
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, object] = {}
    try:
        for amount in (1.0, 0.5):
            detect = DetectConfig(gpu_amount_per_task=amount, executor_wait_s=120)
            result[str(amount)] = run_stages(spark, detect, Path(records, str(amount)))
        result["executors"] = executor_gpus(spark)
        try:
            plan_detect(spark, DetectConfig(gpu_amount_per_task=3))
        except GpuSchedulingError as error:
            result["over_ask_error"] = str(error)
        try:
            require_gpu_executors(spark, 3, wait_s=5)
        except GpuSchedulingError as error:
            result["too_few_advertised_error"] = str(error)
    finally:
        spark.stop()
    result["no_executors"] = no_executors(master)
    return result


def no_executors(master: str) -> dict[str, object]:
    """Executors ask for 3 GPUs and the worker has 2: none starts, and the detect stage must say why."""
    spark = cluster_session(master, "3")
    spark.sparkContext.setLogLevel("ERROR")
    started = time.monotonic()
    try:
        plan_detect(spark, DetectConfig(executor_wait_s=NO_EXECUTOR_WAIT_S))
        return {"error": None}
    except GpuSchedulingError as error:
        return {"error": str(error), "seconds": time.monotonic() - started}
    finally:
        spark.stop()


def lake(home: str) -> dict[str, object]:
    from deepsift.lake.session import ensure_spark_jars, spark_conf
    from deepsift.lake.tables import EXTRACTIONS, SCAN_RUNS, TableSchemaError, ensure_tables

    config = load_config(
        environ={}, overrides={"home": home, "spark.master": "local[1]", "spark.shuffle_partitions": 1}
    )
    # deepsift's own settings with Delta, on Spark's in-memory catalog: the Derby metastore would only
    # add start-up time, and ensure_tables goes through the session catalog either way.
    ensure_spark_jars(config)
    conf = spark_conf(config) | {"spark.sql.catalogImplementation": "in-memory"}
    builder = SparkSession.builder.master(config.spark.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, object] = {}
    try:
        schema = "t_gpu_lake"
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        scan_runs = SCAN_RUNS.qualified(schema)
        spark.sql(f"CREATE TABLE {scan_runs} ({OLD_SCAN_RUNS}) USING DELTA")
        old_row = {
            "run_id": "scan-old", "trigger": "cli", "scan_date": date(2026, 11, 1),
            "model_name": "m", "model_version": 1, "model_uri": "models:/m/1", "preprocess_version": "pp-1",
            "status": "succeeded",
        }
        spark.createDataFrame([old_row], OLD_SCAN_RUNS).write.format("delta").mode("append").saveAsTable(scan_runs)
        result["columns_before"] = spark.table(scan_runs).columns
        table_path = config.warehouse_dir / f"{schema}.db" / SCAN_RUNS.name
        result["table_path"] = str(table_path)
        ensure_tables(spark, schema, (SCAN_RUNS,))
        result["commits"] = [len(list((table_path / "_delta_log").glob("*.json")))]
        ensure_tables(spark, schema, (SCAN_RUNS,))
        result["commits"].append(len(list((table_path / "_delta_log").glob("*.json"))))
        result["columns_after"] = spark.table(scan_runs).columns

        spark.sql(f"CREATE TABLE {EXTRACTIONS.qualified(schema)} ({EXTRACTIONS_WITHOUT_STATUS}) USING DELTA")
        try:
            ensure_tables(spark, schema, (EXTRACTIONS,))
            result["not_null_error"] = None
        except TableSchemaError as error:
            result["not_null_error"] = str(error)

        result["local_profile"] = plan_detect(spark, DetectConfig()) is not None
        try:
            result["local_cuda_profile"] = plan_detect(spark, DetectConfig(device="cuda")) is not None
        except GpuSchedulingError as error:
            result["local_cuda_error"] = str(error)
    finally:
        spark.stop()
    return result


SCENARIOS: dict[str, Callable[..., dict[str, object]]] = {
    "scheduling": scheduling,
    "lake": lake,
}

if __name__ == "__main__":
    scenario, result_file, *arguments = sys.argv[1:]
    outcome = SCENARIOS[scenario](*arguments)
    Path(result_file).write_text(json.dumps(outcome, default=str))
