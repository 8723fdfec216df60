"""Analysts' SQL on the shared scanned lake: the views against the tables they summarise, saved
queries, and the read-only guard refusing every kind of write while queries still run.

The views are checked after a second version of the fixture's model rescored the cached crops on the
next day (``@champion`` stays where it was), so ``latest_verdicts`` and ``model_comparison`` have two
versions to choose between. Expected values are computed in Python from ``verdicts`` and ``videos``.
Writes are attempted in this module's own schema, never in ``t_scanned``.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
import torch
import yaml
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException

from deepsift.cli import main
from deepsift.detect.architectures import build_detector_network
from deepsift.lake.readonly import READ_ONLY_CONF, ensure_extension_jar, read_only_session
from deepsift.lake.tables import _split_top_level
from deepsift.registry.mlflow_models import DetectorRegistry
from deepsift.sql import analyst
from deepsift.sql.views import EVERY_VIEW, LATEST_VERDICTS
from deepsift.stages.scan import rescore
from deepsift.verdicts.labels import Verdict

FLAGGED = (Verdict.SUSPICIOUS.value, Verdict.MANIPULATED.value)
UNSCORED = (Verdict.ERROR.value, Verdict.NOT_APPLICABLE.value)


@pytest.fixture(scope="module")
def two_versions(spark, scanned_lake):
    """A second version of the fixture's model (other weights, same contract) rescored the day after."""
    config = scanned_lake.config
    torch.manual_seed(11)
    registry = DetectorRegistry(config.mlflow, config.home)
    second = registry.log_and_register(
        build_detector_network(scanned_lake.model.contract.architecture).state_dict(),
        scanned_lake.model.contract,
        {"auc": 0.5},
        "# second untrained fixture version, for model comparison",
    )
    rescore(spark, config, str(second.version), scanned_lake.scan_date + timedelta(days=1))
    assert registry.resolve("@champion").version == scanned_lake.model.version
    return scanned_lake.model.version, second.version


@pytest.fixture(scope="module")
def tables(spark, scanned_lake, two_versions):
    """Every verdict joined with its video's URI, as dicts."""
    schema = scanned_lake.config.lake.schema_name
    rows = spark.sql(f"SELECT d.*, v.uri FROM {schema}.verdicts d JOIN {schema}.videos v USING (video_id)").collect()
    return [row.asDict() for row in rows]


def _view(spark, scanned_lake, name, where=""):
    return [row.asDict() for row in spark.sql(f"SELECT * FROM {scanned_lake.config.lake.schema_name}.{name} {where}").collect()]


def test_views_return_the_columns_their_specs_declare(spark, scanned_lake, two_versions):
    for view in EVERY_VIEW:
        fields = spark.table(view.qualified(scanned_lake.config.lake.schema_name)).schema.fields
        declared = [(c.split()[0], " ".join(c.split()[1:]).lower()) for c in _split_top_level(view.columns)]
        assert [(f.name, f.dataType.simpleString()) for f in fields] == declared, view.name


def test_latest_verdicts_has_each_video_once_with_its_newest_verdict_and_uri(spark, scanned_lake, tables):
    newest = {}
    for row in tables:
        rank = (row["scanned_at"], row["scan_date"], row["model_version"])
        if row["video_id"] not in newest or rank > newest[row["video_id"]][0]:
            newest[row["video_id"]] = (rank, row)
    latest = {row["video_id"]: row for row in _view(spark, scanned_lake, LATEST_VERDICTS.name)}
    assert len(latest) == spark.table(f"{scanned_lake.config.lake.schema_name}.videos").count()
    assert set(latest) == set(newest)
    for video_id, (_, expected) in newest.items():
        got = latest[video_id]
        assert (got["uri"], got["verdict"], got["reason"], got["model_version"], got["run_id"]) == (
            expected["uri"], expected["verdict"], expected["reason"], expected["model_version"], expected["run_id"]
        )
    assert scanned_lake.hostile_uri in {row["uri"] for row in latest.values()}


def test_daily_summary_counts_videos_per_date_model_verdict_and_reason(spark, scanned_lake, tables, two_versions):
    expected = Counter((r["scan_date"], r["model_name"], r["model_version"], r["verdict"], r["reason"]) for r in tables)
    rows = _view(spark, scanned_lake, "daily_summary")
    got = {(r["scan_date"], r["model_name"], r["model_version"], r["verdict"], r["reason"]): r["videos"] for r in rows}
    assert got == dict(expected)
    first = Counter()
    for (scan_date, _, version, verdict, _), count in got.items():
        if scan_date == scanned_lake.scan_date and version == two_versions[0]:
            first[verdict] += count
    assert dict(first) == scanned_lake.outcome.verdicts.by_verdict  # what the scan itself counted


def test_error_breakdown_counts_unscored_videos_with_an_example(spark, scanned_lake, tables):
    videos, uris = defaultdict(set), defaultdict(set)
    for row in tables:
        if row["verdict"] in UNSCORED:
            key = (row["scan_date"], row["verdict"], row["reason"])
            videos[key].add(row["video_id"])
            uris[key].add(row["uri"])
    rows = _view(spark, scanned_lake, "error_breakdown")
    assert {(r["scan_date"], r["verdict"], r["reason"]): (r["videos"], r["example_uri"]) for r in rows} == {
        key: (len(ids), min(uris[key])) for key, ids in videos.items()
    }
    on_scan_date = sum(r["videos"] for r in rows if r["scan_date"] == scanned_lake.scan_date)
    assert on_scan_date == sum(scanned_lake.outcome.verdicts.by_reason.values()) > 0


def test_model_comparison_pairs_the_two_versions_video_by_video(spark, scanned_lake, tables, two_versions):
    first, second = two_versions
    by_version = {version: {r["video_id"]: r for r in tables if r["model_version"] == version} for version in two_versions}
    both = set(by_version[first]) & set(by_version[second])
    assert len(both) == len(by_version[first]) > 0
    rows = _view(spark, scanned_lake, "model_comparison", f"WHERE version_a = {first} AND version_b = {second}")
    assert sorted(r["video_id"] for r in rows) == sorted(both)
    for row in rows:
        a, b = by_version[first][row["video_id"]], by_version[second][row["video_id"]]
        assert (row["verdict_a"], row["verdict_b"], row["agree"]) == (a["verdict"], b["verdict"], a["verdict"] == b["verdict"])
        if a["score"] is None or b["score"] is None:
            assert row["score_diff"] is None
        else:
            assert row["score_diff"] == pytest.approx(b["score"] - a["score"])
    reverse = _view(spark, scanned_lake, "model_comparison", f"WHERE version_a = {second} AND version_b = {first}")
    assert len(reverse) == len(rows)
    scored = [r for r in rows if r["score_diff"] is not None]
    assert scored and any(r["score_diff"] != 0 for r in scored)

    sql, bound = analyst.bind_saved("compare-versions", {"a": str(first), "b": str(second)})
    summary = analyst.run_statement(spark, scanned_lake.config.lake.schema_name, sql, bound)
    (pair,) = [dict(zip(summary.columns, row, strict=True)) for row in summary.rows]
    assert (pair["videos"], pair["agree"], pair["disagree"]) == (
        len(rows), sum(r["agree"] for r in rows), sum(not r["agree"] for r in rows)
    )
    assert pair["mean_abs_score_diff"] == pytest.approx(sum(abs(r["score_diff"]) for r in scored) / len(scored))


def test_saved_queries_filter_by_their_parameters(spark, scanned_lake, tables, two_versions):
    schema = scanned_lake.config.lake.schema_name
    day_after = scanned_lake.scan_date + timedelta(days=1)
    sql, bound = analyst.bind_saved("flagged")
    flagged = analyst.run_statement(spark, schema, sql, bound)
    latest = _view(spark, scanned_lake, LATEST_VERDICTS.name, f"WHERE verdict IN {FLAGGED}")
    assert sorted(row[flagged.columns.index("video_id")] for row in flagged.rows) == sorted(r["video_id"] for r in latest)
    scores = [row[flagged.columns.index("score")] for row in flagged.rows]
    assert scores == sorted(scores, reverse=True)

    sql, bound = analyst.bind_saved("daily-summary", {"date": day_after.isoformat()})
    summary = analyst.run_statement(spark, schema, sql, bound)
    assert {row[0] for row in summary.rows} == {day_after}
    assert sum(row[summary.columns.index("videos")] for row in summary.rows) == sum(
        1 for r in tables if r["scan_date"] == day_after
    )
    sql, bound = analyst.bind_saved("errors", {"date": scanned_lake.scan_date.isoformat()})
    errors = analyst.run_statement(spark, schema, sql, bound, max_rows=1)
    reasons = _view(spark, scanned_lake, "error_breakdown", f"WHERE scan_date = '{scanned_lake.scan_date}'")
    assert len(reasons) > 1 and errors.truncated and len(errors.rows) == 1


@pytest.fixture(scope="module")
def scratch(spark, lake_config):
    """A small Delta table and a view in this module's own schema, for the writes the guard must refuse."""
    schema = lake_config.lake.schema_name
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {schema}.notes (id INT, text STRING) USING DELTA")
    spark.sql(f"INSERT INTO {schema}.notes VALUES (1, 'one'), (2, 'two')")
    spark.sql(f"CREATE OR REPLACE VIEW {schema}.notes_view AS SELECT * FROM {schema}.notes")
    return schema


def _state(spark, schema):
    """Rows, Delta version and catalog listing: equal states mean nothing was written."""
    rows = sorted(tuple(row) for row in spark.table(f"{schema}.notes").collect())
    version = DeltaTable.forName(spark, f"{schema}.notes").history(1).first()["version"]
    listing = sorted(row.tableName for row in spark.sql(f"SHOW TABLES IN {schema}").collect())
    return rows, version, listing


REFUSED = [
    ("INSERT", "INSERT INTO notes VALUES (3, 'three')"),
    ("INSERT", "INSERT OVERWRITE notes SELECT * FROM notes"),
    ("UPDATE", "UPDATE notes SET text = 'x' WHERE id = 1"),
    ("DELETE", "DELETE FROM notes WHERE id = 1"),
    ("MERGE", "MERGE INTO notes t USING (SELECT 9 AS id, 'nine' AS text) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *"),
    ("DROP", "DROP TABLE notes"),
    ("DROP", "DROP VIEW notes_view"),
    ("ALTER", "ALTER TABLE notes ADD COLUMNS (extra INT)"),
    ("ALTER", "ALTER TABLE notes SET TBLPROPERTIES ('team' = 'analysts')"),
    ("CREATE", "CREATE TABLE made_by_analyst (n INT) USING DELTA"),
    ("CREATE", "CREATE TABLE made_by_analyst USING DELTA AS SELECT * FROM notes"),
    ("CREATE", "CREATE OR REPLACE VIEW notes_view AS SELECT 1 AS id"),
    ("TRUNCATE", "TRUNCATE TABLE notes"),
    ("CACHE", "CACHE TABLE notes"),
    ("ADD JAR", "ADD JAR {jar}"),
    ("REFRESH", "REFRESH TABLE notes"),
    ("OPTIMIZE", "OPTIMIZE notes"),
    ("VACUUM", "VACUUM notes"),
    ("RESTORE", "RESTORE TABLE notes TO VERSION AS OF 0"),
    ("DELETE", "EXECUTE IMMEDIATE 'DELETE FROM notes'"),
    ("TRANSFORM", "SELECT TRANSFORM(id) USING 'cat' AS (id) FROM notes"),
    ("reflect()", "SELECT reflect('java.lang.System', 'getProperty', 'user.dir')"),
    (f"SET {READ_ONLY_CONF}=false", f"SET {READ_ONLY_CONF}=false"),
    (f"RESET {READ_ONLY_CONF}", f"RESET {READ_ONLY_CONF}"),
    ("RESET", "RESET"),
]


def test_every_kind_of_write_is_refused_naming_it_and_nothing_changes(spark, base_config, scratch):
    before = _state(spark, scratch)
    jar = ensure_extension_jar(base_config.cache_dir / "jars")
    for kind, statement in REFUSED:
        with pytest.raises(analyst.SqlError) as refused:
            analyst.run_statement(spark, scratch, statement.format(jar=jar))
        message = str(refused.value)
        assert f"[FORBIDDEN_OPERATION] The operation {kind} is not allowed on the read-only session" in message
        assert "\tat " not in message and "JVM stacktrace" not in message
    assert _state(spark, scratch) == before
    assert spark.conf.get(READ_ONLY_CONF, "false") == "false"  # the caller's session was never switched


def test_a_dataframe_write_from_a_read_only_session_is_refused_too(spark, scratch):
    before = _state(spark, scratch)
    session = read_only_session(spark, scratch)
    with pytest.raises(AnalysisException, match="The operation INSERT is not allowed on the read-only session"):
        session.table("notes").write.format("delta").mode("append").saveAsTable(f"{scratch}.notes")
    assert _state(spark, scratch) == before


@pytest.mark.parametrize(
    ("statement", "columns", "first_row"),
    [
        ("SELECT count(*) FROM notes", ["count(1)"], (2,)),
        ("WITH n AS (SELECT id FROM notes) SELECT max(id) FROM n", ["max(id)"], (2,)),
        ("VALUES (1, 'a')", ["col1", "col2"], (1, "a")),
        ("SHOW TABLES", ["namespace", "tableName", "isTemporary"], None),
        ("DESCRIBE notes", ["col_name", "data_type", "comment"], ("id", "int", None)),
        ("DESCRIBE HISTORY notes", None, None),
        ("EXPLAIN SELECT * FROM notes_view", ["plan"], None),
        ("USE default", [], None),
        ("SET spark.sql.shuffle.partitions=3", ["key", "value"], ("spark.sql.shuffle.partitions", "3")),
        ("SET", ["key", "value"], None),
        (f"SET {READ_ONLY_CONF}=true", ["key", "value"], (READ_ONLY_CONF, "true")),
        ("RESET spark.sql.shuffle.partitions", [], None),
    ],
)
def test_queries_and_session_statements_run(spark, scratch, statement, columns, first_row):
    result = analyst.run_statement(spark, scratch, statement)
    if statement == "SHOW TABLES":
        assert sorted(row[1] for row in result.rows) == ["notes", "notes_view"]
    if statement == "DESCRIBE HISTORY notes":
        columns = result.columns
        assert {"version", "operation"} <= set(columns) and result.rows[0][columns.index("operation")] == "WRITE"
    if statement.startswith("EXPLAIN"):
        assert "FileScan" in result.rows[0][0] and "notes" in result.rows[0][0]
    if statement == "SET":
        assert ("spark.app.name", "deepsift") in result.rows
    assert result.columns == columns
    if first_row is not None:
        assert result.rows[0] == first_row
    if columns == []:
        assert result.rows == []


@pytest.fixture(scope="module")
def cli_config(scanned_lake, tmp_path_factory) -> str:
    """``deepsift --config`` for the scanned lake; the CLI reuses this process's running session."""
    path = tmp_path_factory.mktemp("sql-cli") / "deepsift.yaml"
    path.write_text(yaml.safe_dump(scanned_lake.config.model_dump(mode="json")))
    return str(path)


def test_cli_prints_json_csv_and_tables(spark, scanned_lake, cli_config, two_versions, capsys):
    statement = "SELECT verdict, count(*) AS videos FROM latest_verdicts GROUP BY verdict ORDER BY verdict"
    assert main(["--config", cli_config, "sql", "--format", "json", statement]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = Counter(r["verdict"] for r in _view(spark, scanned_lake, LATEST_VERDICTS.name))
    assert {row["verdict"]: row["videos"] for row in printed} == dict(expected)

    assert main(["--config", cli_config, "sql", "--format", "csv", "--saved", "errors",
                 "--param", f"date={scanned_lake.scan_date}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scan_date,verdict,reason,videos,example_uri"
    assert len(lines) - 1 == len(_view(spark, scanned_lake, "error_breakdown", f"WHERE scan_date = '{scanned_lake.scan_date}'"))

    markup = "[bold]x[/bold]"  # printed as text, never read as rich markup
    statement = f"SELECT count(*) AS n, '{markup}' AS markup FROM videos WHERE uri = :uri"
    assert main(["--config", cli_config, "sql", statement, "--param", f"uri={scanned_lake.hostile_uri}"]) == 0
    assert re.search(r"│\s+1\s+│\s+" + re.escape(markup) + r"\s+│", capsys.readouterr().out)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELEC verdict FROM verdicts", "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'"),
        ("SELECT * FROM no_such_table", "[TABLE_OR_VIEW_NOT_FOUND]"),
        ("DELETE FROM verdicts WHERE 1 = 0", "The operation DELETE is not allowed on the read-only session"),
    ],
)
def test_cli_errors_show_sparks_message_without_a_stack_trace(cli_config, statement, expected, capsys):
    assert main(["--config", cli_config, "sql", statement]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert "\tat " not in err and "Traceback" not in err and "py4j" not in err
