"""The DAG files: they parse without errors, without the metadata DB, a connection or heavy imports, and
every DAG carries its schedule, catch-up, retries with back-off, timeouts, tags, owner and docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dags.sandbox import RUNNER, clean_environ

SPARK_TASKS = (
    ("deepsift_nightly_scan", "scan"),
    ("deepsift_nightly_scan", "report"),
    ("deepsift_train", "train"),
    ("deepsift_maintenance", "maintain"),
)


@pytest.fixture(scope="module")
def parse_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parse-only")


@pytest.fixture(scope="module")
def parsed(parse_root: Path) -> dict[str, Any]:
    """``dags/`` parsed in a child process whose metadata DB would be created on first use and whose
    ``spark_default`` connection cannot be parsed: touching either would show."""
    env = clean_environ() | {
        "AIRFLOW_HOME": str(parse_root / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{parse_root / 'metadata.db'}",
        "AIRFLOW_CONN_SPARK_DEFAULT": "{not a connection",
    }
    out = parse_root / "dags.json"
    subprocess.run(
        [sys.executable, str(RUNNER), "describe", str(out)], env=env, check=True, capture_output=True, timeout=300
    )
    return json.loads(out.read_text())


def test_the_four_dags_parse_without_import_errors(parsed):
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == {
        "deepsift_nightly_scan", "deepsift_train", "deepsift_promote", "deepsift_maintenance"
    }


def test_parsing_opens_no_metadata_db(parsed, parse_root):
    assert not (parse_root / "metadata.db").exists()


def test_parsing_imports_no_spark_torch_mlflow_or_deepsift_internals(parsed):
    assert parsed["heavy_modules"] == []


def test_the_training_dag_defaults_to_the_librarys_default_architecture(parsed):
    """The DAG file writes the default as a literal (importing it would load torch at parse time)."""
    from deepsift.detect.architectures import DEFAULT_ARCHITECTURE

    assert parsed["dags"]["deepsift_train"]["param_defaults"]["architecture"] == DEFAULT_ARCHITECTURE


def test_schedules_and_catchup(parsed):
    dags = parsed["dags"]
    assert dags["deepsift_nightly_scan"]["schedule"] == ["CronDataIntervalTimetable", "0 0 * * *", "UTC"]
    assert dags["deepsift_train"]["schedule"] == ["CronTriggerTimetable", "0 3 * * 6", "UTC"]
    assert dags["deepsift_maintenance"]["schedule"] == ["CronTriggerTimetable", "0 6 * * 0", "UTC"]
    assert dags["deepsift_promote"]["schedule"] is None
    assert all(dag["catchup"] is False for dag in parsed["dags"].values())


def test_every_dag_has_owner_tags_one_active_run_a_timeout_and_docs(parsed):
    for dag_id, dag in parsed["dags"].items():
        assert dag["owner"] == "deepsift", dag_id
        assert "deepsift" in dag["tags"] and len(dag["tags"]) == 2, dag_id
        assert dag["max_active_runs"] == 1, dag_id
        assert dag["dagrun_timeout_s"] and dag["dagrun_timeout_s"] > 0, dag_id
        assert dag["doc_md"].lstrip().startswith("### deepsift "), dag_id


def test_every_task_retries_with_exponential_backoff_and_a_timeout(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            where = f"{dag_id}.{task_id}"
            assert task["owner"] == "deepsift", where
            assert task["retries"] >= 1, where
            assert task["retry_exponential_backoff"] > 1, where
            assert task["retry_delay_s"] == 300 and task["max_retry_delay_s"] == 3600, where
            assert task["execution_timeout_s"] and task["execution_timeout_s"] <= dag["dagrun_timeout_s"], where
            assert task["doc_md"], where


def test_spark_jobs_go_through_spark_submit_on_spark_default_in_one_pool(parsed):
    for dag_id, task_id in SPARK_TASKS:
        task = parsed["dags"][dag_id]["tasks"][task_id]
        assert (task["operator"], task["conn_id"], task["pool"]) == (
            "SparkSubmitOperator", "spark_default", "deepsift_spark"
        ), dag_id
    promote_tasks = parsed["dags"]["deepsift_promote"]["tasks"].values()
    assert [task["operator"] for task in promote_tasks] == ["_PythonDecoratedOperator"]


def test_nightly_scan_tasks_end_with_the_report_job(parsed):
    tasks = parsed["dags"]["deepsift_nightly_scan"]["tasks"]
    assert set(tasks) == {"resolve_day", "has_uploads", "prepare_scan", "scan", "prepare_report", "report"}
    assert "jobs/report.py" in tasks["report"]["doc_md"] and "stub" not in tasks["report"]["doc_md"].lower()
