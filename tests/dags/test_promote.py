"""The promotion DAG with ``dag.test()`` on a real MLflow store: a worse challenger is refused (the task
ends skipped and the champion stays), a better one measured on the same set becomes ``@champion``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import torch

from deepsift.config import load_config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.registry.mlflow_models import DetectorRegistry
from tests.dags.sandbox import AirflowSandbox

MODEL = "promote-test"
ENV = {"DEEPSIFT_MLFLOW__REGISTERED_MODEL": MODEL}


@pytest.fixture(scope="module")
def registry(airflow_sandbox: AirflowSandbox) -> DetectorRegistry:
    """A registered model of this module's own in the sandbox's store, so the scan's champion stays put."""
    config = load_config(environ={"DEEPSIFT_HOME": str(airflow_sandbox.deepsift_home), **ENV})
    return DetectorRegistry(config.mlflow, config.home)


def _register(registry: DetectorRegistry, auc: float) -> int:
    torch.manual_seed(0)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    state = build_detector_network(contract.architecture).state_dict()
    return registry.log_and_register(state, contract, {"auc": auc}, "# test", eval_set_id="set-a").version


def test_a_worse_challenger_is_refused_and_a_better_one_promoted(airflow_sandbox, registry):
    champion, worse, better = (_register(registry, auc) for auc in (0.7, 0.6, 0.8))
    registry.set_alias("champion", champion)
    registry.set_alias("challenger", worse)

    refused = airflow_sandbox.run("deepsift_promote", datetime(2025, 6, 3, tzinfo=UTC), env=ENV)
    assert (refused.state, refused.state_of("promote")) == ("success", "skipped"), refused.output[-5000:]
    assert f"not promoted: refused: challenger v{worse} auc 0.6000 < champion v{champion}" in refused.output
    assert registry.resolve("@champion").version == champion

    registry.set_alias("challenger", better)
    promoted = airflow_sandbox.run("deepsift_promote", datetime(2025, 6, 4, tzinfo=UTC), env=ENV)
    assert (promoted.state, promoted.state_of("promote")) == ("success", "success"), promoted.output[-5000:]
    assert registry.resolve("@champion").version == better
