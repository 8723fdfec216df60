"""The typed helpers behind the DAGs: scan date and source folder, job arguments, master reachability,
VACUUM retention. No Airflow, no Spark: plain functions on real folders and sockets."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from deepsift.orchestration.days import ScanInputError, count_uploads, resolve_upload_day, scan_date_for, source_folder
from deepsift.orchestration.maintenance import RETENTION_CHECK, RetentionError, check_retention, retention_hours
from deepsift.orchestration.submit import (
    MasterUnreachableError,
    SubmissionError,
    build_submission,
    check_reachable,
    scan_args,
    train_args,
)
from tests.dags.sandbox import REPO_ROOT

UTC = UTC
NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def day(year: int, month: int, dom: int, hour: int = 0) -> datetime:
    return datetime(year, month, dom, hour, tzinfo=UTC)


def test_a_whole_past_utc_day_gives_its_start_as_scan_date():
    assert scan_date_for(day(2026, 11, 25), day(2026, 11, 26), NOW) == date(2026, 11, 25)
    berlin = timezone(timedelta(hours=1))
    start, end = datetime(2026, 11, 25, 1, tzinfo=berlin), datetime(2026, 11, 26, 1, tzinfo=berlin)
    assert scan_date_for(start, end, NOW) == date(2026, 11, 25)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (day(2026, 11, 26), day(2026, 11, 27), "scan date 2026-11-26 is in the future or not over yet"),
        (day(2026, 12, 1), day(2026, 12, 2), "scan date 2026-12-01 is in the future"),
        (day(2026, 11, 24, 12), day(2026, 11, 25, 12), "is not one whole UTC day"),
        (day(2026, 11, 24), day(2026, 11, 26), "is not one whole UTC day"),
        (datetime(2026, 11, 24), datetime(2026, 11, 25), "has no time zone"),
        (None, None, "has no data interval"),
    ],
)
def test_future_partial_naive_or_missing_intervals_are_refused(start, end, message):
    with pytest.raises(ScanInputError, match=message):
        scan_date_for(start, end, NOW)


def test_the_day_folder_follows_the_layout_under_an_absolute_root(tmp_path, monkeypatch):
    scan_date = date(2026, 11, 25)
    assert source_folder(scan_date, str(tmp_path)) == str(tmp_path / "2026-11-25")
    assert source_folder(scan_date, str(tmp_path), "%Y/%m/%d") == str(tmp_path / "2026" / "11" / "25")
    assert source_folder(scan_date, "s3://uploads/raw/", "dt=%Y%m%d") == "s3://uploads/raw/dt=20261125"
    monkeypatch.chdir(tmp_path)
    assert source_folder(scan_date, "relative") == str(tmp_path / "relative" / "2026-11-25")


@pytest.mark.parametrize(
    ("root", "layout", "message"),
    [
        (None, None, "no source root: set the Airflow variable deepsift_source_root"),
        ("/mnt/uploads", "%Y-%m", "must name the year, month and day"),
        ("/mnt/uploads", "%m-%d", "must name the year, month and day"),
        ("/mnt/uploads", "../%Y-%m-%d", "must give a relative folder"),
        ("/mnt/uploads", "/%Y-%m-%d", "must give a relative folder"),
    ],
)
def test_a_missing_root_or_an_ambiguous_layout_is_refused(root, layout, message):
    with pytest.raises(ScanInputError, match=message):
        source_folder(date(2026, 11, 25), root, layout)


def test_uploads_are_counted_recursively_without_hidden_files(tmp_path):
    folder = tmp_path / "2026-11-25"
    (folder / "nested").mkdir(parents=True)
    (folder / ".partial").mkdir()
    for name in ("a.mp4", "nested/b.mp4", ".upload.tmp", ".partial/c.mp4"):
        (folder / name).write_bytes(b"x")
    assert count_uploads(str(folder), date(2026, 11, 25)) == 2
    assert count_uploads(folder.as_uri(), date(2026, 11, 25)) == 2


def test_a_missing_folder_or_a_file_is_refused_naming_the_path(tmp_path):
    missing = tmp_path / "2026-11-25"
    with pytest.raises(ScanInputError, match=f"source folder for 2026-11-25 does not exist: {missing}"):
        count_uploads(str(missing), date(2026, 11, 25))
    missing.write_bytes(b"x")
    with pytest.raises(ScanInputError, match=f"is not a folder: {missing}"):
        count_uploads(str(missing), date(2026, 11, 25))


def test_resolving_a_run_gives_date_folder_and_count(tmp_path):
    (tmp_path / "2026-11-25").mkdir()
    (tmp_path / "2026-11-25" / "clip.mp4").write_bytes(b"x")
    upload_day = resolve_upload_day(day(2026, 11, 25), day(2026, 11, 26), str(tmp_path), now=NOW)
    assert (upload_day.scan_date, upload_day.folder, upload_day.files) == (
        date(2026, 11, 25), str(tmp_path / "2026-11-25"), 1
    )


def test_scan_arguments_carry_folder_date_and_a_checked_trigger():
    run_id = "scheduled__2026-11-26T00:00:00+00:00"
    assert scan_args("uploads-root/2026-11-25", date(2026, 11, 25), f"airflow:deepsift_nightly_scan/{run_id}") == [
        "uploads-root/2026-11-25", "--date", "2026-11-25", "--trigger", f"airflow:deepsift_nightly_scan/{run_id}"
    ]
    for trigger in ("cli", "airflow:dag/run id", "airflow:dag/run\nid", "airflow:/run"):
        with pytest.raises(SubmissionError, match="is not airflow:<dag_id>/<run_id>"):
            scan_args("uploads-root/2026-11-25", date(2026, 11, 25), trigger)


def test_training_arguments_are_validated_and_always_alias_challenger():
    assert train_args("efficientnet_b0", 2, input_size=128, since="2026-11-01", labels_table="deepsift.labels") == [
        "--architecture", "efficientnet_b0", "--epochs", "2", "--alias", "challenger",
        "--input-size", "128", "--since", "2026-11-01", "--labels-table", "deepsift.labels",
    ]
    assert train_args("efficientnet_lite0", 8, corpus="corpora/faces-train")[-2:] == ["--corpus", "corpora/faces-train"]
    bad = [
        ({"architecture": "x; rm -rf /", "epochs": 1}, "is not a name"),
        ({"architecture": "b0", "epochs": 0}, "epochs must be a positive integer"),
        ({"architecture": "b0", "epochs": True}, "epochs must be a positive integer"),
        ({"architecture": "b0", "epochs": 1, "until": "2026-13-01"}, "until must be a date"),
        ({"architecture": "b0", "epochs": 1, "labels_table": "a b"}, "is not a table name"),
    ]
    for kwargs, message in bad:
        with pytest.raises(SubmissionError, match=message):
            train_args(**kwargs)


def test_an_unknown_job_or_an_unsupported_master_is_refused_before_any_work(tmp_path):
    environ = {"DEEPSIFT_HOME": str(tmp_path)}
    with pytest.raises(SubmissionError, match="no Spark job"):
        build_submission(REPO_ROOT / "jobs", "nope", [], "local[2]", environ)
    with pytest.raises(SubmissionError, match=r"spark\.master.*master from the Airflow connection: mesos://m:5050"):
        build_submission(REPO_ROOT / "jobs", "scan", [], "mesos://m:5050", environ)
    assert not (tmp_path / "cache").exists()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_kubernetes_master_is_reachable_when_any_of_its_hosts_accepts_a_connection():
    with socket.create_server(("127.0.0.1", 0)) as server:
        check_reachable(f"k8s://http://127.0.0.1:{server.getsockname()[1]}")
    check_reachable("local[*]")
    check_reachable("yarn")


def test_a_standalone_master_must_answer_like_a_spark_rpc_server():
    """A listening port that says nothing, or says something that is no Spark frame, is not a master; a
    real master passes (``tests/cluster/test_unreachable_master.py``, on the session's cluster)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with pytest.raises(MasterUnreachableError, match="answered no Spark RPC request within 1 s"):
            check_reachable(f"spark://127.0.0.1:{_closed_port()},127.0.0.1:{port}", timeout_s=1)
    with socket.create_server(("127.0.0.1", 0)) as other:
        answered = threading.Thread(target=_answer_once, args=(other, b"HTTP/1.1 400 Bad Request\r\n\r\n"))
        answered.start()
        with pytest.raises(MasterUnreachableError, match="answered, but not in Spark's RPC protocol"):
            check_reachable(f"spark://127.0.0.1:{other.getsockname()[1]}", timeout_s=5)
        answered.join()


def _answer_once(server: socket.socket, answer: bytes) -> None:
    connection, _ = server.accept()
    with connection:
        connection.recv(4096)
        connection.sendall(answer)


def test_an_unreachable_master_raises_with_its_address():
    port = _closed_port()
    with pytest.raises(MasterUnreachableError, match=f"Spark master spark://127.0.0.1:{port} cannot be reached"):
        check_reachable(f"spark://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(MasterUnreachableError, match=f"127.0.0.1:{port}"):
        check_reachable(f"k8s://https://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(SubmissionError, match="invalid port"):
        check_reachable("spark://host:port")


def test_retention_comes_from_the_run_then_the_variable_and_delta_minimum_is_enforced():
    assert retention_hours(None, None) == 168
    assert retention_hours(None, "336") == 336
    assert retention_hours(24, "336") == 24
    with pytest.raises(RetentionError, match="whole number of hours"):
        retention_hours(None, "a week")
    assert check_retention(168, {}) == 168
    with pytest.raises(RetentionError, match=f"retention of 24 h .* while {RETENTION_CHECK} is on"):
        check_retention(24, {})
    assert check_retention(24, {RETENTION_CHECK: "false"}) == 24
    with pytest.raises(RetentionError, match="0 hours or more"):
        check_retention(-1, {RETENTION_CHECK: "false"})


def test_the_jobs_the_dags_submit_exist():
    for job in ("scan", "train", "maintain"):
        assert (Path(REPO_ROOT) / "jobs" / f"{job}.py").is_file()
