"""Parse or run the DAGs in a fresh interpreter and write what happened as JSON; the DAG tests start it.

Airflow reads its settings (``AIRFLOW_HOME``, the metadata DB, connections) from the environment
when it is imported, so every call gets its own process with the environment the test prepared.

``python dag_runner.py describe OUT`` parses ``dags/`` and writes each DAG's settings, the import
errors and which heavy modules parsing loaded. ``python dag_runner.py test DAG_ID LOGICAL_DATE OUT
[--conf JSON] [--retry-delay-s S]`` runs one DAG with ``dag.test()`` and writes the run's state and
each task's state and try number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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


def run(dag_id: str, logical_date: str, out: Path, conf: str, retry_delay_s: float | None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR)).dags[dag_id]
    if retry_delay_s is not None:
        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=retry_delay_s)
    dag_run = dag.test(logical_date=datetime.fromisoformat(logical_date), run_conf=json.loads(conf))
    tasks = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in dag_run.get_task_instances()}
    out.write_text(json.dumps({"run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": tasks}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    describe_parser = commands.add_parser("describe")
    describe_parser.add_argument("out", type=Path)
    test_parser = commands.add_parser("test")
    test_parser.add_argument("dag_id")
    test_parser.add_argument("logical_date")
    test_parser.add_argument("out", type=Path)
    test_parser.add_argument("--conf", default="{}")
    test_parser.add_argument("--retry-delay-s", type=float)
    args = parser.parse_args()
    if args.command == "describe":
        describe(args.out)
    else:
        run(args.dag_id, args.logical_date, args.out, args.conf, args.retry_delay_s)


if __name__ == "__main__":
    main()
