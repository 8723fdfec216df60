"""Fixtures for the DAG tests: a throwaway Airflow home and deepsift home to run the DAGs in.

The deepsift home is this package's own: embedded Derby admits one JVM at a time, and the integration
tests' SparkSession holds theirs. Results are read from the Delta tables' folders with delta-rs
(``deltalake``), which needs no metastore and no JVM.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dags.sandbox import LOCAL_SPARK, REPO_ROOT, AirflowSandbox, clean_environ, pyspark_bin


@pytest.fixture(scope="session")
def airflow_sandbox(tmp_path_factory: pytest.TempPathFactory, yunet_model: Path) -> Iterator[AirflowSandbox]:
    """Airflow on a fresh SQLite metadata DB (``airflow db migrate``, as ``dag.test()`` needs), the DAGs
    from ``dags/``, ``spark_default`` on ``local[2]``, and deepsift pointed at a temporary home; its DAG
    runner process is stopped at the end of the session."""
    root = tmp_path_factory.mktemp("airflow-sandbox")
    home, uploads = root / "deepsift-home", root / "uploads"
    uploads.mkdir()
    env = clean_environ() | {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": LOCAL_SPARK,
        "AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT": str(uploads),
        "PATH": os.pathsep.join([str(pyspark_bin()), os.environ["PATH"]]),
        "DEEPSIFT_HOME": str(home),
        "DEEPSIFT_FACES__YUNET_MODEL_PATH": str(yunet_model),
        "DEEPSIFT_SPARK__MASTER": "local[2]",
        "DEEPSIFT_SPARK__SHUFFLE_PARTITIONS": "2",
        "DEEPSIFT_SPARK__DRIVER_MEMORY": "2g",
        "DEEPSIFT_SPARK__EXTRA_CONF": "{spark.databricks.delta.snapshotPartitions: '2'}",
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    sandbox = AirflowSandbox(env, home, uploads)
    yield sandbox
    sandbox.close()
