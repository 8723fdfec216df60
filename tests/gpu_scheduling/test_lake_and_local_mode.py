"""A lake from before ``scan_runs.detect_path`` gains the column; local mode runs detect without a profile.

One child driver (``driver.py lake``) on ``local[1]`` with Delta under a temporary home: it creates
``scan_runs`` with the columns it had before this change and an old run in it, calls ``ensure_tables``
twice, tries a table that lacks a NOT NULL column and asks ``plan_detect`` for a profile in local mode.
The table is then read here with delta-rs, which needs no JVM. (The detect UDF without a profile, as
local mode runs it, is tested in ``test_devices``; ``tests/integration`` runs ``score_faces`` locally.)
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch
from deltalake import DeltaTable

from deepsift.lake.tables import SCAN_RUNS
from tests.gpu_scheduling.conftest import run_driver


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("lake")
    return run_driver("lake", work, str(work / "home"))


def test_ensure_tables_adds_the_new_nullable_column_to_an_old_table(lake):
    assert "detect_path" not in lake["columns_before"]
    assert lake["columns_after"] == SCAN_RUNS.column_names()
    table = DeltaTable(lake["table_path"]).to_pyarrow_table()
    field = table.schema.field("detect_path")
    assert field.nullable and field.type in (pa.string(), pa.large_string(), pa.string_view())
    assert table.select(["run_id", "detect_path"]).to_pylist() == [{"run_id": "scan-old", "detect_path": None}]


def test_ensure_tables_changes_nothing_once_the_columns_are_there(lake):
    """create, append, add the column: three commits, and the second call writes none."""
    assert lake["commits"] == [3, 3]


def test_a_missing_not_null_column_is_refused_by_name(lake):
    error = lake["not_null_error"]
    assert error is not None
    assert "t_gpu_lake.extractions lacks column(s) status" in error
    assert "NOT NULL" in error and "migrate the table by hand" in error


def test_local_mode_asks_for_no_profile(lake):
    """Spark refuses task resource profiles in local mode; ``cuda`` there needs a GPU the driver sees."""
    assert lake["local_profile"] is False
    if torch.cuda.is_available():
        assert lake["local_cuda_profile"] is False
    else:
        assert "detect.device is cuda, but Spark runs in local mode (local[1])" in lake["local_cuda_error"]
