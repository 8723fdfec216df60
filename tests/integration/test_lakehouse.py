"""The lakehouse: Delta tables in a persistent catalog, visible by name from a new process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from deepsift.lake.tables import ALL_TABLES, FACES, VIDEOS, ensure_tables


def test_tables_are_delta_with_the_contract_columns(spark, lake_config):
    schema = lake_config.lake.schema_name
    ensure_tables(spark, schema)
    for table in ALL_TABLES:
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


def test_tables_are_queryable_by_name_from_a_new_process(tmp_path):
    """Two separate Python processes share the catalog through the Derby metastore under ``home``."""
    script = textwrap.dedent(
        """
        import sys
        from deepsift.config import load_config
        from deepsift.lake.session import build_spark_session
        config = load_config(environ={}, overrides={"home": sys.argv[1], "spark.master": "local[1]"})
        spark = build_spark_session(config)
        if sys.argv[2] == "write":
            spark.sql("CREATE TABLE deepsift.probe_table (n INT) USING DELTA")
            spark.sql("INSERT INTO deepsift.probe_table VALUES (1), (2), (3)")
        else:
            print("COUNT", spark.sql("SELECT count(*) FROM deepsift.probe_table").first()[0])
        """
    )
    # Embedded Derby admits one JVM at a time, and this test session's own Spark holds another home.
    for mode in ("write", "read"):
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), mode], capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert "COUNT 3" in result.stdout
