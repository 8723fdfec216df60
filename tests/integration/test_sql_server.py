"""`deepsift sql-server` end to end: a real Thrift JDBC server over its own home, queried with Beeline.

The server runs in a child process over a fresh home of its own (embedded Derby admits one JVM, and
this test session's Spark holds the shared metastore), populated by a child `deepsift ingest` of three
shared files. Beeline (from the pyspark wheel's jars) must see the counts `deepsift sql --format json`
sees once the server has stopped, and its writes must be refused. The server is always stopped.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest

from deepsift.lake.metastore import OWNER_LOCK, lock_holder
from deepsift.lake.readonly import READ_ONLY_CONF
from deepsift.lake.session import DRIVER_GC_OPTIONS, INTERPRETED_QUERIES, QUICK_JIT_OPTION
from tests.integration.conftest import command_env
from tests.ports import free_port, listening_addresses
from tests.servers import deepsift_server

INGESTED = ("random_bytes.mp4", "single_frame.mp4", "h264_aac_640x360_25fps_3s.mp4")
BY_STATUS = "SELECT probe_status, count(*) AS n FROM videos GROUP BY probe_status ORDER BY probe_status"
READY_TIMEOUT_S = 300
RESIDUE = re.compile(r"^(?:\d+: jdbc:hive2://\S+> ?|null)+")
"""What Beeline's script mode leaves before a result's first line: prompts, and `null` after each statement."""


def _deepsift(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepsift.cli", *args], env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def server_env(base_config, media_dir, tmp_path_factory) -> dict[str, str]:
    """A fresh home with three ingested videos, and the environment that points deepsift at it."""
    home = tmp_path_factory.mktemp("sql-server-home")
    env = command_env(base_config, home)
    ingested = _deepsift(env, "ingest", *(str(media_dir / "edge" / name) for name in INGESTED))
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    return env


@pytest.fixture(scope="module")
def server(server_env):
    """`deepsift sql-server` on a free port, in its own process group; stopped (SIGTERM, then killed) after."""
    port = free_port()
    log = Path(server_env["DEEPSIFT_HOME"]) / "sql-server.log"
    with deepsift_server(["sql-server", "--port", str(port)], server_env, log, READY_TIMEOUT_S) as process:
        yield process, port


def _beeline(port: int, schema: str, script: Path, statements: list[str]) -> tuple[list[str], str]:
    """Run ``statements`` as one Beeline script (``--force``: on past errors, which ``-e`` does not do);
    return the non-empty stdout lines without Beeline's residue, and stderr."""
    script.write_text("".join(f"{statement};\n" for statement in statements))
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    done = subprocess.run(
        [str(spark_class), "org.apache.hive.beeline.BeeLine", "-u", f"jdbc:hive2://127.0.0.1:{port}/{schema}",
         "--outputformat=csv2", "--silent=true", "--force=true", "-f", str(script)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    lines = (RESIDUE.sub("", line.strip()) for line in re.split(r"[\r\n]+", done.stdout))
    return [line for line in lines if line], done.stderr


def _block(lines: list[str], header: str, headers: set[str]) -> list[list[str]]:
    """The CSV rows printed after ``header``, up to the next result's header; lines with another number
    of fields (Beeline's progress residue) are not rows."""
    assert header in lines, f"no result {header!r} in Beeline's output: {lines}"
    rows = []
    for line in lines[lines.index(header) + 1:]:
        if line in headers:
            break
        if line.count(",") == header.count(","):
            rows.append(line.split(","))
    return rows


def test_jdbc_answers_like_spark_sql_and_refuses_writes(server, server_env):
    process, port = server
    assert listening_addresses(port) == {"127.0.0.1"}

    # Derby admits one JVM: refused before a JVM starts, once the wait for the server is over, naming it
    busy = _deepsift(server_env | {"DEEPSIFT_LAKE__METASTORE_WAIT_S": "2"}, "sql", "SELECT 1", timeout=120)
    assert busy.returncode == 1
    assert f"is in use by another process (pid {process.pid}: {sys.executable} -m deepsift.cli sql-server" in busy.stderr

    headers = {"probe_status,n", "videos_total", "namespace,tableName,isTemporary", "after_writes"}
    lines, errors = _beeline(port, "deepsift", Path(server_env["DEEPSIFT_HOME"]) / "jdbc.sql", [
        BY_STATUS,
        "SELECT count(*) AS videos_total FROM videos",
        "SHOW TABLES",
        "DELETE FROM videos",
        "DROP TABLE videos",
        f"SET {READ_ONLY_CONF}=false",
        "SELECT count(*) AS after_writes FROM videos",
    ])
    by_status = {status: int(n) for status, n in _block(lines, "probe_status,n", headers)}
    total = int(_block(lines, "videos_total", headers)[0][0])
    assert total == len(INGESTED) == sum(by_status.values()) and by_status.get("error", 0) >= 1
    assert ["deepsift", "videos", "false"] in _block(lines, "namespace,tableName,isTemporary", headers)
    assert int(_block(lines, "after_writes", headers)[0][0]) == total
    for refused in ("DELETE", "DROP", f"SET {READ_ONLY_CONF}=false"):
        assert f"The operation {refused} is not allowed on the read-only session" in errors

    metastore = Path(server_env["DEEPSIFT_HOME"]) / "metastore"
    jvm = lock_holder(metastore / "metastore_db" / "dbex.lck")
    assert jvm is not None, "no JVM holds the server's metastore"
    # a JVM that lives for hours compiles with every JIT tier, collects with G1 and compiles its queries
    # (none of the three keys is set here)
    arguments = Path(f"/proc/{jvm.pid}/cmdline").read_bytes().decode().split("\0")
    assert QUICK_JIT_OPTION not in arguments
    assert DRIVER_GC_OPTIONS["g1"] in arguments and DRIVER_GC_OPTIONS["parallel"] not in arguments
    assert "spark.sql.session.timeZone=UTC" in arguments  # deepsift's Spark conf is on the command line
    assert [f"{key}={value}" for key, value in INTERPRETED_QUERIES.items() if f"{key}={value}" in arguments] == []

    process.send_signal(signal.SIGTERM)  # `kill`: the CLI stops its JVM, which frees the metastore
    assert process.wait(timeout=90) == 0
    assert [lock_holder(metastore / OWNER_LOCK), lock_holder(metastore / "metastore_db" / "dbex.lck")] == [None, None]
    after = _deepsift(server_env, "sql", "--format", "json", BY_STATUS)
    assert after.returncode == 0, after.stderr[-3000:]
    assert {row["probe_status"]: row["n"] for row in json.loads(after.stdout)} == by_status
