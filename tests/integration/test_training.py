"""The training job on real crops of ../shared/media/faces: extract, train, evaluate, register, promote."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from deepsift.detect.training import TrainingSettings
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.stages.ingest import ingest
from deepsift.stages.train import DataSelection, TrainRequest, evaluate_version, train_and_register

FAST = TrainingSettings(epochs=1, batch_size=16, max_steps=2, seed=0)


@pytest.fixture(scope="module")
def config(lake_config):
    mlflow = lake_config.mlflow.model_copy(update={"registered_model": "training-test"})
    return lake_config.model_copy(update={"mlflow": mlflow})


@pytest.fixture(scope="module")
def trained(spark, config, media_dir):
    ingest(spark, config, [str(media_dir / "faces")])
    return train_and_register(spark, config, TrainRequest(input_size=64, settings=FAST))


def test_training_registers_a_challenger_with_its_data_lineage(config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    info = registry.resolve("@challenger")
    assert info.version == trained.version.version
    assert info.contract.input_size == 64 and info.contract.architecture == "mobilenetv3_small_050"
    run = MlflowClient(registry.store.tracking_uri).get_run(info.run_id)
    assert int(run.data.params["faces_table_version"]) >= 1
    assert run.data.params["preprocess_version"].startswith("pp-")
    assert int(run.data.params["train_videos"]) + int(run.data.params["validation_videos"]) == 6
    assert int(run.data.params["validation_videos"]) >= 1
    assert "epoch_train_loss" in run.data.metrics and "auc" in run.data.metrics
    assert info.eval_set_id == trained.report.eval_set_id
    # held-out evaluation: each held-out video plus its self-blended copy
    assert trained.report.n_videos == 2 * trained.n_validation_videos


def test_thresholds_chosen_on_held_out_set_are_saved_in_the_contract(config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    contract = registry.load_contract(trained.version.version)
    assert contract.thresholds == trained.report.thresholds


def test_evaluate_then_promote_compares_on_the_same_set(spark, config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    first = registry.promote()  # no champion yet: the challenger becomes champion
    assert first.promoted and registry.resolve("@champion").version == trained.version.version

    second = train_and_register(spark, config, TrainRequest(input_size=64, settings=TrainingSettings(epochs=1, max_steps=1, seed=7)))
    selection = DataSelection()
    champion_report = evaluate_version(spark, config, trained.version.version, selection)
    challenger_report = evaluate_version(spark, config, second.version.version, selection)
    assert champion_report.eval_set_id == challenger_report.eval_set_id

    decision = registry.promote()
    better = challenger_report.metrics["auc"] >= champion_report.metrics["auc"]
    assert decision.promoted == better, decision.reason
    assert registry.resolve("@champion").version == (second.version.version if better else trained.version.version)
