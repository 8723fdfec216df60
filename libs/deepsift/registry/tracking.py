"""Logging detector versions to MLflow: the experiment, each version's run, logged model and tags.

Every version is logged from a run of its own in the registry's experiment, as an MLflow *logged
model* whose metrics are bound to it; the run and the version are tagged with the architecture and,
when known, the evaluation set the metrics were measured on. Creating the experiment or the
registered model tolerates another process having just created it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModel, LoggedModelOutput, Metric, Param
from mlflow.exceptions import MlflowException

from deepsift.detect.contract import PreprocessContract
from deepsift.registry.store import already_exists
from deepsift.registry.versions import ARCHITECTURE_TAG, EVAL_SET_TAG


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``) if it does not exist yet."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as error:  # created by another process meanwhile
        if not already_exists(error):
            raise
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
        return experiment.experiment_id


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Register the model name ``name`` unless it already is."""
    try:
        client.create_registered_model(name, description="deepsift face-manipulation detectors")
    except MlflowException as error:
        if not already_exists(error):
            raise


def run_tags(contract: PreprocessContract, eval_set_id: str | None) -> dict[str, str]:
    """The tags of the run that logs a version: its architecture and, if known, its evaluation set."""
    return {ARCHITECTURE_TAG: contract.architecture} | ({EVAL_SET_TAG: eval_set_id} if eval_set_id else {})


def version_tags(contract: PreprocessContract, eval_set_id: str | None) -> dict[str, str]:
    """The tags of a registered version: the run's, and the input size."""
    return run_tags(contract, eval_set_id) | {"input_size": str(contract.input_size)}


def start_logged_model(client: MlflowClient, experiment_id: str, run_id: str) -> LoggedModel:
    """A new logged detector model, produced by run ``run_id``, its files still to come."""
    logged = client.create_logged_model(
        experiment_id, name="detector", source_run_id=run_id, model_type="deepsift-detector"
    )
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged


def log_run_values(
    client: MlflowClient, run_id: str, model_id: str, metrics: Mapping[str, float], params: Mapping[str, Any]
) -> None:
    """Log ``metrics`` (bound to logged model ``model_id``) and ``params`` on run ``run_id`` in one call."""
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0, model_id=model_id) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
