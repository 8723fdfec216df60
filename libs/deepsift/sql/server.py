"""The Spark Thrift JDBC/ODBC server over the lakehouse: read-only, bound to 127.0.0.1.

It is ``spark-submit --class HiveThriftServer2 spark-internal`` from the pyspark wheel with every
setting of :func:`deepsift.lake.session.spark_conf` (the same warehouse and Derby metastore, Delta,
the read-only extension) plus ``spark.deepsift.sql.readOnly=true`` at startup, so every JDBC session
starts read-only and cannot switch it off. Embedded Derby admits one JVM at a time: while the server
runs, no scan, ``deepsift sql`` or other Spark job can open this home's metastore, and the server
waits its turn while one of them runs (:func:`deepsift.lake.metastore.hold_metastore`), then gives up
with a clear error; it holds that turn until its JVM has exited.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyspark

from deepsift.config import Config
from deepsift.lake.metastore import hold_metastore
from deepsift.lake.readonly import READ_ONLY_CONF
from deepsift.lake.session import ensure_spark_jars, spark_conf
from deepsift.local_server import BIND_HOST, check_port_free, run_in_foreground

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def jdbc_url(config: Config, port: int) -> str:
    """The URL a JDBC client (Beeline, a BI tool) connects to, with the deepsift schema as default."""
    return f"jdbc:hive2://{BIND_HOST}:{port}/{config.lake.schema_name}"


def server_command(config: Config, port: int) -> list[str]:
    """The ``spark-submit`` command line of the server (it builds the extension jar if needed).

    The server's JVM runs for hours over analysts' queries, so it compiles with every JIT tier and
    compiles its queries (:func:`long_lived`): the client compiler alone and interpreted queries suit
    short commands only (docs/benchmarks.md).
    """
    ensure_spark_jars(config)
    conf = {**spark_conf(long_lived(config)), READ_ONLY_CONF: "true"}
    # The server opens JDBC sessions on threads whose class loader does not see spark.jars (DeltaCatalog
    # was not found): the jars go on the JVM's own class path too.
    class_path = [*conf["spark.jars"].split(","), conf.get("spark.driver.extraClassPath", "")]
    conf["spark.driver.extraClassPath"] = os.pathsep.join(filter(None, class_path))
    command = [
        str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
        "--master", config.spark.master,
        "--name", f"{config.spark.app_name}-sql-server",
        "--class", THRIFT_SERVER_CLASS,
    ]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    # spark-submit adds the primary resource `spark-internal` itself for this class; what follows is the server's.
    return [
        *command,
        "--hiveconf", f"hive.server2.thrift.bind.host={BIND_HOST}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
    ]


def long_lived(config: Config) -> Config:
    """``config`` for a driver that lives for hours over analysts' queries: ``spark.driver_jit: full``,
    ``spark.driver_gc: g1`` and ``spark.query_codegen: compiled``, each unless its key was set.

    >>> from deepsift.config import load_config
    >>> served = long_lived(load_config(environ={})).spark
    >>> served.driver_jit, served.driver_gc, served.query_codegen
    ('full', 'g1', 'compiled')
    >>> served = long_lived(load_config(environ={"DEEPSIFT_SPARK__DRIVER_JIT": "quick"})).spark
    >>> served.driver_jit, served.driver_gc, served.query_codegen
    ('quick', 'g1', 'compiled')
    """
    chosen = config.spark.model_fields_set if "spark" in config.model_fields_set else set()
    defaults = {"driver_jit": "full", "driver_gc": "g1", "query_codegen": "compiled"}
    update = {key: value for key, value in defaults.items() if key not in chosen}
    return config.model_copy(update={"spark": config.spark.model_copy(update=update)})


def serve(config: Config, port: int, on_ready: Callable[[str], None]) -> int:
    """Run the server in the foreground until Ctrl-C (or SIGTERM); return its exit status (0 when stopped).

    ``on_ready`` gets the JDBC URL once the port accepts connections. SIGTERM reaches the JVM, whose
    shutdown hooks release the metastore.
    """
    with hold_metastore(config):
        check_port_free(port)
        command = server_command(config, port)
        config.warehouse_dir.mkdir(parents=True, exist_ok=True)
        return run_in_foreground(command, port, lambda: on_ready(jdbc_url(config, port)), what="the JDBC server")
