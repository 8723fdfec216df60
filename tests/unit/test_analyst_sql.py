"""Analysts' SQL without Spark: saved queries, parameters, CSV/JSON output, the extension's build
prerequisites, and the JDBC server's refusals that come before any JVM starts."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import Row

from deepsift.cli import main
from deepsift.config import load_config
from deepsift.lake.readonly import (
    EXTENSION_SOURCE,
    JDK_PACKAGE,
    READ_ONLY_CONF,
    JavacNotFoundError,
    ensure_extension_jar,
)
from deepsift.local_server import ServerStartError
from deepsift.sql import analyst
from deepsift.sql.server import serve
from deepsift.verdicts.labels import Verdict
from tests.ports import free_port

_MARKER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def test_saved_queries_are_described_and_declare_exactly_the_markers_they_use():
    queries = analyst.saved_queries()
    assert {"flagged", "daily-summary", "errors", "compare-versions"} <= set(queries)
    for query in queries.values():
        body = "\n".join(line for line in query.sql.splitlines() if not line.startswith("--"))
        assert query.description, query.name
        assert set(_MARKER.findall(body)) == set(query.parameters), query.name
        quoted = set(re.findall(r"'([a-z_]+)'", body))
        assert quoted <= {verdict.value for verdict in Verdict}, f"{query.name}: {quoted} are not verdicts"


def test_bind_saved_refuses_unknown_names_and_parameters_and_leaves_omitted_ones_null():
    with pytest.raises(analyst.UnknownSavedQueryError, match=r"no saved query 'nope'; known: .*daily-summary.*flagged"):
        analyst.bind_saved("nope")
    with pytest.raises(analyst.ParameterError, match="has no parameter day; its parameters: date"):
        analyst.bind_saved("flagged", {"day": "2026-11-24"})
    sql, bound = analyst.bind_saved("compare-versions", {"b": "4"})
    assert bound == {"a": None, "b": "4"}
    assert sql == analyst.saved_query("compare-versions").sql


@pytest.mark.parametrize("pair", ["date", "=2026-11-24", "Date=1", "a b=1"])
def test_malformed_parameters_are_refused(pair):
    with pytest.raises(analyst.ParameterError, match="is not NAME=VALUE"):
        analyst.parse_parameters([pair])


def test_parameters_keep_everything_after_the_first_equals_sign():
    assert analyst.parse_parameters(["note=a=b", "date=2026-11-24"]) == {"note": "a=b", "date": "2026-11-24"}


def test_csv_and_json_render_every_kind_of_value():
    result = analyst.QueryResult(
        columns=["d", "t", "n", "x", "b", "nested", "s"],
        rows=[
            (date(2026, 11, 24), datetime(2026, 11, 24, 3, 4, 5), None, Decimal("1.50"), b"\x00\xff",
             Row(a=1, tags=["x", "y"]), 'say "hi", twice'),
        ],
        truncated=False,
    )
    assert json.loads(analyst.to_json(result)) == [{
        "d": "2026-11-24", "t": "2026-11-24T03:04:05", "n": None, "x": 1.5, "b": "AP8=",
        "nested": {"a": 1, "tags": ["x", "y"]}, "s": 'say "hi", twice',
    }]
    lines = analyst.to_csv(result).splitlines()
    assert lines == [
        "d,t,n,x,b,nested,s",
        '2026-11-24,2026-11-24T03:04:05,,1.5,AP8=,"{""a"": 1, ""tags"": [""x"", ""y""]}","say ""hi"", twice"',
    ]


def test_the_java_guard_and_python_name_the_same_setting():
    assert f'READ_ONLY_KEY = "{READ_ONLY_CONF}"' in EXTENSION_SOURCE.read_text()


def test_without_javac_the_build_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jre-only"))  # a JAVA_HOME without bin/javac
    with pytest.raises(JavacNotFoundError, match=f"apt-get install {JDK_PACKAGE}"):
        ensure_extension_jar(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_sql_command_line_errors_before_spark(capsys):
    assert main(["sql", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("flagged", "daily-summary", "errors", "compare-versions", ":date"))
    assert main(["sql"]) == 2
    assert "give one SQL statement or --saved NAME" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--saved", "flagged"]) == 2
    assert main(["sql", "--saved", "flaged"]) == 1
    assert "no saved query 'flaged'; known: compare-versions, credentials, daily-summary, errors, flagged" in capsys.readouterr().err


def test_sql_server_refuses_a_metastore_another_process_holds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    monkeypatch.setenv("DEEPSIFT_LAKE__METASTORE_WAIT_S", "1")
    lock = tmp_path / "metastore" / "metastore_db" / "dbex.lck"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         (
             "import fcntl, os, sys, time\n"
             "handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
             "fcntl.lockf(handle, fcntl.LOCK_EX)\n"
             "print('locked', flush=True)\n"
             "time.sleep(120)\n"
         ),
         str(lock)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["sql-server", "--port", str(free_port())]) == 1
        refusal = " ".join(capsys.readouterr().err.split())
        assert f"is in use by another process (pid {holder.pid}: {sys.executable} -c import fcntl" in refusal
        assert "still after 1 s (lake.metastore_wait_s)" in refusal
    finally:
        holder.kill()
        holder.wait()
    with socket.socket() as busy:  # lock released; now the port is what is in use
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ServerStartError, match=f"port {busy.getsockname()[1]} on 127.0.0.1 is in use"):
            serve(load_config(environ={}, overrides={"home": str(tmp_path)}), busy.getsockname()[1], print)
