"""
### deepsift promotion

Manual only. Compares the `@challenger` version with `@champion` on `metric` (default `auc`) and
moves `@champion` to the challenger when it is at least as good, as `deepsift models promote` does.
Both versions must carry the metric measured on the same evaluation set (`deepsift evaluate --model
@challenger` and `--model @champion` with the same selection); otherwise nothing moves. With no
champion yet, the challenger becomes champion. `force` promotes anyway and tags the version.

A refusal is not a failure: the task ends **skipped**, and its log says why, with both numbers.
Running it again after a promotion changes nothing (the challenger already holds `@champion`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from deepsift.orchestration.defaults import dag_options


@dag(
    schedule=None,
    **dag_options(
        "deepsift_promote", timedelta(minutes=30), "models", __doc__,
        params={
            "metric": Param("auc", type="string", description="metric to compare; higher is better"),
            "force": Param(False, type="boolean", description="promote even if the challenger is worse"),
        },
    )
)
def deepsift_promote() -> None:
    @task
    def promote(params: dict[str, Any]) -> dict[str, Any]:
        """Move ``@champion`` to ``@challenger`` when it is at least as good; skipped when refused."""
        from dataclasses import asdict

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from deepsift.config import ConfigError, load_config
        from deepsift.registry.errors import RegistryError
        from deepsift.registry.mlflow_models import DetectorRegistry

        try:
            config = load_config()
            decision = DetectorRegistry(config.mlflow, config.home).promote(
                metric=params["metric"], force=params["force"]
            )
        except (ConfigError, RegistryError) as error:
            raise AirflowFailException(str(error)) from error
        if not decision.promoted:
            raise AirflowSkipException(f"not promoted: {decision.reason}")
        print(f"promoted: {decision.reason}")
        return asdict(decision)

    promote()


deepsift_promote()
