"""Running the DAGs in child processes: Airflow reads its settings from the environment when imported.

Each run gets a fresh interpreter (``dag_runner.py``) with an environment built by the tests, so no
Airflow setting leaks into the rest of the test session; the spark-submit that a DAG's task starts
inherits the same environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("dag_runner.py")
LOCAL_SPARK = json.dumps({"conn_type": "spark", "host": "local[2]"})


def pyspark_bin() -> Path:
    """The folder of the pyspark wheel's ``spark-submit``."""
    return Path(importlib.util.find_spec("pyspark").submodule_search_locations[0]) / "bin"


def clean_environ() -> dict[str, str]:
    """This process's environment without any Airflow or deepsift setting of the developer's own."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "DEEPSIFT_"))}


@dataclass(frozen=True)
class DagRunResult:
    """A finished ``dag.test()``: the run's id and state, each task's state and try number, the output."""

    run_id: str
    state: str
    tasks: dict[str, dict[str, Any]]
    output: str

    def state_of(self, task_id: str) -> str:
        return self.tasks[task_id]["state"]


@dataclass(frozen=True)
class AirflowSandbox:
    """An Airflow home with a migrated SQLite DB, a deepsift home and an uploads root, as environment."""

    env: dict[str, str]
    deepsift_home: Path
    uploads: Path

    def run(
        self,
        dag_id: str,
        logical_date: datetime,
        *,
        retry_delay_s: float | None = None,
        env: dict[str, str | None] | None = None,
        timeout_s: float = 900,
    ) -> DagRunResult:
        """Run ``dag_id`` for ``logical_date`` with ``dag.test()`` in a child process; ``env`` entries set to
        None are removed from its environment."""
        out = self.deepsift_home.parent / f"{dag_id}-{datetime.now().timestamp()}.json"
        command = [sys.executable, str(RUNNER), "test", dag_id, logical_date.isoformat(), str(out)]
        if retry_delay_s is not None:
            command += ["--retry-delay-s", str(retry_delay_s)]
        child_env = {key: value for key, value in {**self.env, **(env or {})}.items() if value is not None}
        process = subprocess.run(
            command, env=child_env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT, check=False
        )
        output = process.stdout + process.stderr
        if process.returncode != 0 or not out.exists():
            pytest.fail(f"dag.test() of {dag_id} did not finish (exit {process.returncode}):\n{output[-5000:]}")
        outcome = json.loads(out.read_text())
        return DagRunResult(outcome["run_id"], outcome["state"], outcome["tasks"], output)

    def table_path(self, table: str) -> Path:
        return self.deepsift_home / "warehouse" / "deepsift.db" / table
