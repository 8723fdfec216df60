"""Parse or run the DAGs in an interpreter of their own and write what happened as JSON; the DAG tests
start it.

Airflow reads its settings (``AIRFLOW_HOME``, the metadata DB) from the environment when it is
imported, so the process starts with the environment the test prepared.

``python dag_runner.py describe OUT`` parses ``dags/`` and writes each DAG's settings, the import
errors and which heavy modules parsing loaded (a fresh interpreter, so the list is parsing's alone).
``python dag_runner.py serve`` runs DAGs with ``dag.test()`` one request at a time: each line on
standard input is a JSON request (``dag_id``, ``logical_date``, ``out``, ``log``,
``retry_delay_s``, ``env``); the run's state and each task's state and try number go to ``out``,
everything the run prints (spark-submit's children included) to ``log``, and one line ``done`` to
standard output when it is over. Airflow's imports and its in-process execution API are built once:
a run after the first takes about a second of Airflow's own instead of six.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
HEAVY_MODULES = ("pyspark", "py4j", "torch", "timm", "mlflow", "cv2", "av", "deltalake", "delta", "pandas", "pyarrow")
HEAVY_DEEPSIFT = ("deepsift.config", "deepsift.lake", "deepsift.stages", "deepsift.registry", "deepsift.detect",
                  "deepsift.media", "deepsift.faces", "deepsift.cli")


def describe(out: Path) -> None:
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR))
    seconds = time.perf_counter() - started
    loaded = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in HEAVY_MODULES or any(name == m or name.startswith(m + ".") for m in HEAVY_DEEPSIFT)
    )
    result = {
        "import_errors": bag.import_errors,
        "heavy_modules": loaded,
        "seconds": seconds,
        "dags": {dag_id: _settings(dag) for dag_id, dag in bag.dags.items()},
    }
    out.write_text(json.dumps(result, default=str))


def _settings(dag: Any) -> dict[str, Any]:
    timetable = dag.timetable
    schedule = None if dag.schedule is None else [type(timetable).__name__, timetable.expression, timetable.timezone]
    return {
        "schedule": schedule,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "dagrun_timeout_s": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
        "tags": sorted(dag.tags),
        "owner": dag.owner,
        "doc_md": dag.doc_md,
        "param_defaults": {name: param.value for name, param in dag.params.items()},
        "tasks": {
            task.task_id: {
                "owner": task.owner,
                "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "retry_exponential_backoff": task.retry_exponential_backoff,
                "max_retry_delay_s": task.max_retry_delay.total_seconds() if task.max_retry_delay else None,
                "execution_timeout_s": task.execution_timeout.total_seconds() if task.execution_timeout else None,
                "pool": task.pool,
                "operator": type(task).__name__,
                "conn_id": getattr(task, "_conn_id", None),
                "doc_md": task.doc_md,
            }
            for task in dag.tasks
        },
    }


def run(dag_id: str, logical_date: str, out: Path, retry_delay_s: float | None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR)).dags[dag_id]
    if retry_delay_s is not None:
        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=retry_delay_s)
    dag_run = dag.test(logical_date=datetime.fromisoformat(logical_date))
    tasks = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in dag_run.get_task_instances()}
    out.write_text(json.dumps({"run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": tasks}))


def serve() -> None:
    """Run the requests read from standard input, one after the other, until it closes.

    The requests come on a private copy of standard input, which itself becomes ``/dev/null``: nothing a
    task starts can read the next request. Between runs, standard output goes to standard error (the
    runner's own log), so only the ``done`` lines reach the reply pipe.
    """
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    os.dup2(2, 1)
    for line in requests:
        request = json.loads(line)
        with _output_to(Path(request["log"])), _environment(request["env"]):
            try:
                run(request["dag_id"], request["logical_date"], Path(request["out"]), request["retry_delay_s"])
            except (Exception, SystemExit):  # the test fails on the missing result, showing this
                traceback.print_exc()
        replies.write("done\n")


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Standard output and error, of this process and of every child it starts meanwhile, into ``log``."""
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    with log.open("w") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)


@contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``changes`` applied (None removes a key) for one run, then as it was."""
    saved = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    describe_parser = commands.add_parser("describe")
    describe_parser.add_argument("out", type=Path)
    commands.add_parser("serve")
    args = parser.parse_args()
    if args.command == "describe":
        describe(args.out)
    else:
        serve()


if __name__ == "__main__":
    main()
