"""The one place a SparkSession is built: Delta enabled, with a persistent Hive catalog.

Entrypoints call :func:`build_spark_session` once and pass the session down; library code never
builds one. On the embedded defaults the catalog is a Derby metastore and the warehouse a folder,
both under ``home``, so tables are queryable by name from any later process
(``SELECT count(*) FROM deepsift.videos``). Embedded Derby admits one JVM at a time.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from deepsift.config import Config
from deepsift.lake.jars import ensure_delta_jars


class JavaNotFoundError(RuntimeError):
    """Spark needs a Java 17+ runtime and none was found."""


def check_java() -> None:
    """Fail with a one-line instruction when no ``java`` is reachable (Spark's own error is obscure)."""
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise JavaNotFoundError(
            "Java 17 or newer is required: install a JDK (e.g. `apt-get install openjdk-17-jre-headless`) "
            "or set JAVA_HOME"
        )


def spark_conf(config: Config) -> dict[str, str]:
    """Every Spark setting deepsift relies on, for a session here or for spark-submit elsewhere."""
    jars = ensure_delta_jars(config.cache_dir / "jars", config.spark.maven_repo)
    metastore = config.metastore_dir
    conf = {
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(config.warehouse_dir),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={metastore}",
        "spark.driver.memory": config.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if config.spark.master.startswith("local"):
        # Delta rebuilds a table's state with 50 partitions by default; on one machine that is mostly
        # task overhead (measured: half the CPU of a small scan went there).
        conf["spark.databricks.delta.snapshotPartitions"] = "4"
    conf.update(config.spark.extra_conf)
    return conf


def build_spark_session(config: Config) -> SparkSession:
    """Create (or return the running) SparkSession for ``config``, with the deepsift schema present."""
    check_java()
    # Python workers must run this interpreter (the one deepsift is installed in); PySpark reads the
    # environment, not spark.pyspark.python, when it starts a session from Python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    config.metastore_dir.mkdir(parents=True, exist_ok=True)
    config.warehouse_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(config.spark.master).appName(config.spark.app_name)
    for key, value in spark_conf(config).items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark.sparkContext.setCheckpointDir(str(config.checkpoint_dir))
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {config.lake.schema_name}")
    return spark
