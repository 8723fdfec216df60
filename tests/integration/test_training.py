"""The training job on real crops of ../shared/media/faces and a corpus of real faces: extract, train,
calibrate, evaluate, register, promote; and the refusals that leave the registry untouched."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from deepsift.detect.training import TrainingDataError, TrainingSettings
from deepsift.registry.errors import ModelNotFoundError
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.stages.ingest import ingest
from deepsift.stages.train import DataSelection, TrainRequest, evaluate_version, train_and_register
from tests.conftest import SHARED_DIR

FAST = TrainingSettings(epochs=1, batch_size=16, max_steps=2, seed=0, pretrained=False, mask="box")
SMALL = TrainRequest(architecture="mobilenetv3_small_050", input_size=64, settings=FAST)


@pytest.fixture(scope="module")
def config(lake_config):
    mlflow = lake_config.mlflow.model_copy(update={"registered_model": "training-test"})
    return lake_config.model_copy(update={"mlflow": mlflow})


@pytest.fixture(scope="module")
def trained(spark, config, media_dir):
    ingest(spark, config, [str(media_dir / "faces")])
    return train_and_register(spark, config, SMALL)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """Six people of the shared starter corpus, one still each, with their manifest rows and README."""
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copyfile(SHARED_DIR / "faces-train" / "README.md", folder / "README.md")
    with (SHARED_DIR / "faces-train" / "MANIFEST.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames
        rows = [row for row in reader if row["path"].startswith("stills/frl_canada/")][:6]
    for row in rows:
        (folder / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_DIR / "faces-train" / row["path"], folder / row["path"])
    with (folder / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_training_registers_a_challenger_with_its_data_lineage(config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    info = registry.resolve("@challenger")
    assert info.version == trained.version.version
    assert info.contract.input_size == 64 and info.contract.architecture == "mobilenetv3_small_050"
    run = MlflowClient(registry.store.tracking_uri).get_run(info.run_id)
    assert int(run.data.params["faces_table_version"]) >= 1
    assert run.data.params["preprocess_version"].startswith("pp-")
    assert run.data.params["init"] == "random" and run.data.params["mask"] == "box"
    assert int(run.data.params["train_groups"]) + int(run.data.params["validation_groups"]) == 6
    assert int(run.data.params["validation_groups"]) >= 1
    assert "epoch_train_loss" in run.data.metrics and "auc" in run.data.metrics
    assert info.eval_set_id == trained.report.eval_set_id
    # held-out evaluation: each held-out video plus its self-blended copy
    assert trained.report.n_videos == 2 * trained.n_validation_groups


def test_thresholds_chosen_on_held_out_set_are_saved_in_the_contract(config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    contract = registry.load_contract(trained.version.version)
    assert contract.thresholds == trained.report.thresholds


def test_platform_crops_and_a_corpus_train_together_and_the_card_credits_each_source(spark, config, trained, tiny_corpus):
    outcome = train_and_register(spark, config, replace(SMALL, corpus=tiny_corpus, alias=None))
    assert outcome.n_train_groups + outcome.n_validation_groups == 6 + 6  # six videos, six people
    registry = DetectorRegistry(config.mlflow, config.home)
    run = MlflowClient(registry.store.tracking_uri).get_run(outcome.version.run_id)
    assert run.data.params["corpus"] == str(tiny_corpus) and run.data.params["platform_crops"] == "True"
    card = registry.client.get_model_version(registry.name, str(outcome.version.version)).description
    assert "Young Adult White Faces" in card and "young White adults" in card and "faces` table" in card


def test_a_source_that_yields_nothing_fails_by_name_and_registers_nothing(spark, lake_config, tmp_path):
    empty = lake_config.model_copy(
        update={
            "lake": lake_config.lake.model_copy(update={"schema_name": "t_training_empty"}),
            "mlflow": lake_config.mlflow.model_copy(update={"registered_model": "training-empty"}),
        }
    )
    with pytest.raises(TrainingDataError, match="the faces table holds no crops at preprocess_version pp-"):
        train_and_register(spark, empty, SMALL)
    (tmp_path / "MANIFEST.csv").write_text("path,source,identity_id,license,attribution\n")
    with pytest.raises(TrainingDataError, match=f"no face found in the corpus {tmp_path}"):
        train_and_register(None, empty, replace(SMALL, corpus=tmp_path, platform_crops=False))
    with pytest.raises(ModelNotFoundError):
        DetectorRegistry(empty.mlflow, empty.home).resolve("@challenger")


def test_evaluate_then_promote_compares_on_the_same_set(spark, config, trained):
    registry = DetectorRegistry(config.mlflow, config.home)
    registry.set_alias("challenger", trained.version.version)
    first = registry.promote()  # no champion yet: the challenger becomes champion
    assert first.promoted and registry.resolve("@champion").version == trained.version.version

    second_settings = TrainingSettings(epochs=1, max_steps=1, seed=7, pretrained=False)
    second = train_and_register(spark, config, replace(SMALL, settings=second_settings))
    selection = DataSelection()
    champion_report = evaluate_version(spark, config, trained.version.version, selection)
    challenger_report = evaluate_version(spark, config, second.version.version, selection)
    assert champion_report.eval_set_id == challenger_report.eval_set_id

    decision = registry.promote()
    better = challenger_report.metrics["auc"] >= champion_report.metrics["auc"]
    assert decision.promoted == better, decision.reason
    assert registry.resolve("@champion").version == (second.version.version if better else trained.version.version)
