"""The lakehouse: Delta tables in a persistent catalog. That a new process sees them by name, and that a
command's driver JVM gets the default compiler and collector options, the back-to-back command cycle
checks (``tests/integration/test_command_lifecycle.py``), where every command is a new process."""

from __future__ import annotations

from datetime import date

from deepsift.lake.tables import (
    EXTRACTION_TABLES,
    FACE_SCORES,
    FACES,
    VIDEOS,
    append_once,
    ensure_tables,
    table_version,
)


def test_tables_are_delta_with_the_contract_columns(spark, lake_config):
    schema = lake_config.lake.schema_name
    ensure_tables(spark, schema)
    for table in EXTRACTION_TABLES:
        detail = spark.sql(f"DESCRIBE DETAIL {table.qualified(schema)}").first()
        assert detail["format"] == "delta"
        assert spark.table(table.qualified(schema)).columns == table.column_names()
    assert spark.sql(f"DESCRIBE DETAIL {VIDEOS.qualified(schema)}").first()["partitionColumns"] == ["ingest_date"]
    assert spark.sql(f"DESCRIBE DETAIL {FACES.qualified(schema)}").first()["partitionColumns"] == ["preprocess_version"]


def test_ensure_tables_keeps_existing_rows(spark, lake_config):
    schema = lake_config.lake.schema_name
    ensure_tables(spark, schema)
    spark.sql(
        f"INSERT INTO {schema}.extractions (video_id, preprocess_version, status, extracted_at) "
        "VALUES ('v', 'p', 'ok', current_timestamp())"
    )
    ensure_tables(spark, schema)
    assert spark.table(f"{schema}.extractions").count() == 1


def test_a_run_appended_twice_from_the_same_table_version_is_written_once(spark, lake_config):
    schema = lake_config.lake.schema_name
    ensure_tables(spark, schema, (FACE_SCORES,))

    def scores(run_id: str):
        rows = [(run_id, "v1", "pp", frame, 0, "detector", 1, 0.25, date(2026, 12, 4)) for frame in range(3)]
        return spark.createDataFrame(rows, FACE_SCORES.columns)

    read = table_version(spark, schema, FACE_SCORES)
    append_once(spark, schema, FACE_SCORES, scores("run-a"), writer="run-a", read_version=read)
    assert table_version(spark, schema, FACE_SCORES) == read + 1
    # the same run written again from the version it read (a second process, or a retry): skipped
    append_once(spark, schema, FACE_SCORES, scores("run-a"), writer="run-a", read_version=read)
    assert table_version(spark, schema, FACE_SCORES) == read + 1
    # another run from that version is another writer: written
    append_once(spark, schema, FACE_SCORES, scores("run-b"), writer="run-b", read_version=read)
    table = spark.table(FACE_SCORES.qualified(schema))
    assert sorted((row.run_id, row.frame_index) for row in table.collect()) == [
        (run, frame) for run in ("run-a", "run-b") for frame in range(3)
    ]


def test_the_session_jvm_runs_with_the_configured_compiler(spark, lake_config):
    """``spark.driver_jit: quick`` (the default, which the test session keeps) reaches the real driver JVM
    as the client-compiler option; ``full`` leaves it out (tests/unit/test_config.py), and the cycle of
    commands checks the flags a command's JVM ends up with."""
    from deepsift.lake.session import QUICK_JIT_OPTION

    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()  # noqa: SLF001
    assert lake_config.spark.driver_jit == "quick"
    assert QUICK_JIT_OPTION in list(runtime.getInputArguments())


def test_hive_keeps_its_session_resources_beside_the_metastore(spark, base_config):
    """Hive's default is a new folder per session in the system temp folder, never removed: every command
    left one behind. Its client session, started by the session's catalog, uses the metastore's instead."""
    spark.sql("SHOW DATABASES").collect()
    assert (base_config.metastore_dir / "hive-resources").is_dir()


def test_queries_run_interpreted_by_default(spark, lake_config):
    """``spark.query_codegen: interpreted`` (the default, which the test session keeps) reaches the
    session: its plans have no whole-stage code generation, which Spark's own setting brings back."""
    query = "EXPLAIN SELECT id + 1 AS next FROM range(3) WHERE id > 0"
    assert lake_config.spark.query_codegen == "interpreted"
    assert "*(1)" not in spark.sql(query).first()[0]
    compiling = spark.newSession()
    compiling.conf.set("spark.sql.codegen.factoryMode", "FALLBACK")  # Spark's default
    assert "*(1) Project" in compiling.sql(query).first()[0]  # what a compiled stage looks like in a plan
