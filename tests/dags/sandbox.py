"""Running the DAGs in a child process: Airflow reads its settings from the environment when imported.

A sandbox's runs go to one interpreter of their own (``dag_runner.py serve``), started with the
sandbox's environment, so no Airflow setting leaks into the rest of the test session; the spark-submit
that a DAG's task starts inherits that environment. The runner pays Airflow's imports and builds its
in-process execution API once for all of the sandbox's runs (about 6 s of CPU each otherwise). A run
may change only what Airflow and deepsift read when a task runs (connections, variables, deepsift's
configuration), never a setting Airflow read at import.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
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


@dataclass
class AirflowSandbox:
    """An Airflow home with a migrated SQLite DB, a deepsift home and an uploads root, as environment,
    and the runner process its DAG runs go to (started at the first run; :meth:`close` stops it)."""

    env: dict[str, str]
    deepsift_home: Path
    uploads: Path
    _runner: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def run(
        self,
        dag_id: str,
        logical_date: datetime,
        *,
        retry_delay_s: float | None = None,
        env: dict[str, str | None] | None = None,
        timeout_s: float = 900,
    ) -> DagRunResult:
        """Run ``dag_id`` for ``logical_date`` with ``dag.test()`` in the runner; ``env`` entries are set
        for this run only, those set to None removed."""
        changes = env or {}
        if fixed := sorted(key for key in changes if key == "AIRFLOW_HOME" or key.startswith("AIRFLOW__")):
            raise ValueError(f"Airflow read {fixed} when the runner started; a run cannot change them")
        stem = self.deepsift_home.parent / f"{dag_id}-{datetime.now().timestamp()}"
        out, log = stem.with_suffix(".json"), stem.with_suffix(".log")
        request = {
            "dag_id": dag_id, "logical_date": logical_date.isoformat(), "out": str(out), "log": str(log),
            "retry_delay_s": retry_delay_s, "env": changes,
        }
        finished = self._request(json.dumps(request), timeout_s)
        output = log.read_text() if log.exists() else ""
        if not finished or not out.exists():
            pytest.fail(f"dag.test() of {dag_id} did not finish:\n{output[-5000:]}\n{self._runner_log()[-3000:]}")
        outcome = json.loads(out.read_text())
        return DagRunResult(outcome["run_id"], outcome["state"], outcome["tasks"], output)

    def table_path(self, table: str) -> Path:
        return self.deepsift_home / "warehouse" / "deepsift.db" / table

    def close(self) -> None:
        """Stop the runner (it exits when its input closes), and whatever it started, if still running."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        assert runner.stdin is not None
        runner.stdin.close()
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _kill_group(runner)

    def _request(self, line: str, timeout_s: float) -> bool:
        """Send one request and wait for its ``done``; False when the runner died or ran out of time. A runner
        whose run did not end (that, or the test interrupted meanwhile) is stopped with everything it
        started, so no late ``done`` answers the next request; the next run starts a new one."""
        if self._runner is None or self._runner.poll() is not None:
            with self._runner_log_path().open("a") as runner_log:
                self._runner = subprocess.Popen(
                    [sys.executable, str(RUNNER), "serve"],
                    env=self.env, cwd=REPO_ROOT, text=True, start_new_session=True,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=runner_log,
                )
        runner = self._runner
        assert runner.stdin is not None and runner.stdout is not None
        finished = False
        try:
            runner.stdin.write(line + "\n")
            runner.stdin.flush()
            deadline = time.monotonic() + timeout_s
            while not finished and (left := deadline - time.monotonic()) > 0:
                if select.select([runner.stdout], [], [], left)[0]:
                    if runner.stdout.readline() != "done\n":
                        break  # end of output: the runner died
                    finished = True
        finally:
            if not finished:
                _kill_group(runner)
                self._runner = None
        return finished

    def _runner_log_path(self) -> Path:
        return self.deepsift_home.parent / "dag-runner.log"

    def _runner_log(self) -> str:
        path = self._runner_log_path()
        return path.read_text() if path.exists() else ""


def _kill_group(runner: subprocess.Popen) -> None:
    """Kill the runner's process group (the runner, and the spark-submit it may be waiting for) and reap it."""
    with contextlib.suppress(ProcessLookupError):  # none of the group is left
        os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
