"""The one place a SparkSession is built: Delta enabled, with a persistent Hive catalog.

Entrypoints call :func:`build_spark_session` once and pass the session down; library code never
builds one. On the embedded defaults the catalog is a Derby metastore and the warehouse a folder,
both under ``home``, so tables are queryable by name from any later process
(``SELECT count(*) FROM deepsift.videos``). Embedded Derby admits one JVM at a time: a process takes
its turn on the metastore before its JVM starts (:mod:`deepsift.lake.metastore`), and gives it back
only once that JVM has exited (:func:`stop_spark_session`), so commands run back to back never meet.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark import SparkContext
from pyspark.sql import SparkSession

from deepsift.config import Config, ConfigError, memory_bytes
from deepsift.errors import DeepsiftError
from deepsift.lake.class_archive import ClassArchive, class_archive, user_cache_dir
from deepsift.lake.jars import delta_jar_paths, ensure_delta_jars
from deepsift.lake.jdk import jdk_tool
from deepsift.lake.metastore import MetastoreLease, hold_metastore
from deepsift.lake.readonly import EXTENSION_CLASS, ensure_extension_jar, extension_jar_path
from deepsift.lake.tables import ensure_schema
from deepsift.spark_master import MasterUnreachableError, SubmissionError, check_reachable

logger = logging.getLogger(__name__)

LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
"""The driver's console log unless ``spark.verbose_logs``: the warnings a user can act on, not Spark's
and Hive's routine ones."""
QUICK_JIT_OPTION = "-XX:TieredStopAtLevel=1"
"""The driver JVM's option under ``spark.driver_jit: quick``: compile with the client compiler only."""
QUICK_JIT_CODE_CACHE = "-XX:ReservedCodeCacheSize=240m"
"""Its companion: with the client compiler alone HotSpot reserves 48 MB for compiled code, which a long
command fills (``deepsift demo`` did, in 153 s); the JVM then stops compiling, runs the rest interpreted
and says so on the console. 240 MB is the size HotSpot's full tiers reserve; it is address space, used
only as code is compiled."""
DRIVER_GC_OPTIONS = {"parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC"}
"""The driver JVM's option for each ``spark.driver_gc``: named either way, since HotSpot picks a collector
by the machine's size when none is."""
DRIVER_METASPACE_OPTION = "-XX:MetaspaceSize=256m"
"""How much class metadata the driver JVM holds before it first collects it. From HotSpot's default (about
21 MB) a session crosses the mark twice while it loads Spark's, Delta's and Hive's classes and generates
its own, each time with a full collection that stops the driver for 150 to 200 ms (docs/benchmarks.md)."""
JVM_OPTION_VARIABLES = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS")
"""Environment variables every JVM adds options from: a collector named there wins, since HotSpot refuses
to start with two ("Multiple garbage collectors selected")."""
_COLLECTOR_OPTION = re.compile(r"-XX:\+Use\w+GC\b")
INTERPRETED_QUERIES = {"spark.sql.codegen.factoryMode": "NO_CODEGEN"}
"""The Spark conf of ``spark.query_codegen: interpreted``: no Java is generated and compiled per query.
Spark marks it internal (its own tests run every query both ways); it is the one switch that covers
expression code generation and whole-stage code generation alike."""
JVM_EXIT_TIMEOUT_S = 60.0
"""How long a JVM may take to exit (Spark's shutdown hooks) before it is killed (the kernel then drops its
locks; Derby recovers on its next boot)."""

_lease: MetastoreLease | None = None
"""This process's turn on the embedded metastore: taken before its JVM starts, given back once it exited."""
_archive: ClassArchive | None = None
"""The class-data archive this process's JVM maps or writes (``spark.class_archive``)."""


class JavaNotFoundError(DeepsiftError, RuntimeError):
    """Spark needs a Java 17+ runtime and none was found."""


def check_java() -> Path:
    """The ``java`` Spark will run; fails with a one-line instruction when there is none (Spark's own error
    is obscure)."""
    java = jdk_tool("java")
    if java is None:
        raise JavaNotFoundError(
            "Java 17 or newer is required: install a JDK (e.g. `apt-get install openjdk-17-jre-headless`) "
            "or set JAVA_HOME"
        )
    return java


def spark_jars(config: Config) -> list[Path]:
    """The jars every deepsift session adds (Delta, the read-only SQL extension), where they are cached.

    Only paths: :func:`ensure_spark_jars` makes them exist.
    """
    jars_dir = config.cache_dir / "jars"
    return [*delta_jar_paths(jars_dir), extension_jar_path(jars_dir)]


def ensure_spark_jars(config: Config) -> list[Path]:
    """Make the jars of :func:`spark_jars` exist: download the Delta jars and build the extension if missing.

    Called before a JVM that needs them starts (a session here, a spark-submit); at install time,
    ``python -m deepsift.lake.readonly`` builds the extension so that a runtime needs no ``javac``.
    """
    jars_dir = config.cache_dir / "jars"
    return [*ensure_delta_jars(jars_dir, config.spark.maven_repo), ensure_extension_jar(jars_dir)]


def initial_heap_option(driver_memory: str) -> str:
    """The driver JVM's initial heap: half of ``spark.driver_memory``. From HotSpot's default start (1/64 of
    the machine's memory) a one-clip scan's heap grew through two full collections and a dozen young ones;
    from half, no full collection and half the pause time (docs/benchmarks.md). Pages are touched only as
    the heap fills, so a short command does not take the memory at once.

    >>> initial_heap_option("4g"), initial_heap_option("1536M"), initial_heap_option("268435456")
    ('-Xms2048m', '-Xms768m', '-Xms128m')
    """
    return f"-Xms{memory_bytes(driver_memory) // 2 // 1024**2}m"


def _initial_heap(config: Config) -> str:
    """:func:`initial_heap_option` of the heap the session asks for: ``spark.extra_conf`` may set
    ``spark.driver.memory`` too, and wins (an initial heap above the maximum stops the JVM at start)."""
    memory = config.spark.extra_conf.get("spark.driver.memory", config.spark.driver_memory)
    try:
        return initial_heap_option(memory)
    except ValueError as error:
        raise ConfigError(f"config key spark.extra_conf: spark.driver.memory {error} (given: {memory!r})") from None


def spark_conf(config: Config) -> dict[str, str]:
    """Every Spark setting deepsift relies on, for a session here or for spark-submit elsewhere.

    Computed from ``config``, known paths and the JVM's option variables (:data:`JVM_OPTION_VARIABLES`)
    only: it downloads and builds nothing (the jars it names exist once :func:`ensure_spark_jars` ran).
    """
    jars = spark_jars(config)
    metastore = config.metastore_dir
    java_options = [f"-Dderby.system.home={metastore}"]
    if not config.spark.verbose_logs:
        java_options.append(f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}")
    if config.spark.driver_jit == "quick":
        java_options.extend((QUICK_JIT_OPTION, QUICK_JIT_CODE_CACHE))
    if not any(_COLLECTOR_OPTION.search(os.environ.get(variable, "")) for variable in JVM_OPTION_VARIABLES):
        java_options.append(DRIVER_GC_OPTIONS[config.spark.driver_gc])
    java_options.extend((DRIVER_METASPACE_OPTION, _initial_heap(config)))
    conf = {
        "spark.jars": ",".join(str(jar) for jar in jars),
        # The read-only SQL guard is loaded everywhere and enforces only where spark.deepsift.sql.readOnly=true.
        "spark.sql.extensions": f"io.delta.sql.DeltaSparkSessionExtension,{EXTENSION_CLASS}",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(config.warehouse_dir),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true",
        # Hive's client makes a folder for downloaded resources per session, by default in the system temp
        # folder, and never removes it: each command left an empty one there. One folder beside the metastore.
        "spark.hadoop.hive.downloaded.resources.dir": str(metastore / "hive-resources"),
        "spark.driver.extraJavaOptions": " ".join(java_options),
        "spark.driver.memory": config.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta's SQL parser drops the named parameters of spark.sql(query, args) (delta-io/delta#7640);
        # Spark's analysis-time binding of parameters in constant positions still works.
        "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
    }
    if config.spark.query_codegen == "interpreted":
        conf.update(INTERPRETED_QUERIES)
    if config.spark.master.startswith("local"):
        # Delta rebuilds a table's state with 50 partitions by default; on one machine that is mostly
        # task overhead (measured: half the CPU of a small scan went there).
        conf["spark.databricks.delta.snapshotPartitions"] = "4"
    conf.update(config.spark.extra_conf)
    return conf


def submitted_driver_conf(config: Config) -> dict[str, str]:
    """:func:`spark_conf` for a driver JVM that ``spark-submit`` starts on this machine (a DAG's job): it
    maps the class-data archive a deepsift command's JVM wrote here, if there is one (``spark.class_archive``).

    It never writes one: the job's Python ends inside that JVM's lifetime, so nothing would be left to
    publish what the JVM wrote as it exited. Without a ``java`` here it adds nothing, and spark-submit
    says what is missing.
    """
    conf = spark_conf(config)
    java = jdk_tool("java")
    if config.spark.class_archive and java is not None:
        options = driver_class_archive(java, conf).mapping_options()
        conf["spark.driver.extraJavaOptions"] = " ".join([conf["spark.driver.extraJavaOptions"], *options])
    return conf


def build_spark_session(config: Config) -> SparkSession:
    """Create (or return the running) SparkSession for ``config``, with the deepsift schema present.

    Before it starts a JVM it waits its turn on an embedded metastore (``lake.metastore_wait_s``).
    """
    global _lease, _archive
    java = check_java()
    check_master_reachable(config.spark.master)
    if SparkContext._gateway is None and _lease is None:  # noqa: SLF001 - a JVM of this process holds its turn already
        _lease = hold_metastore(config)
    ensure_spark_jars(config)
    conf = spark_conf(config)
    # Under spark-submit the JVM runs already, with the options spark-submit gave it.
    starts_a_jvm = SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ  # noqa: SLF001
    if starts_a_jvm and config.spark.class_archive:
        _archive = driver_class_archive(java, conf)
        options = [conf["spark.driver.extraJavaOptions"], *_archive.java_options()]
        conf["spark.driver.extraJavaOptions"] = " ".join(options)
    # Python workers must run this interpreter (the one deepsift is installed in); PySpark reads the
    # environment, not spark.pyspark.python, when it starts a session from Python.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    config.metastore_dir.mkdir(parents=True, exist_ok=True)
    config.warehouse_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(config.spark.master).appName(config.spark.app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.enableHiveSupport().getOrCreate()
    except Py4JJavaError as error:
        if config.spark.master.startswith("spark://") and _is_stopped_context(error):
            raise _not_a_master(config.spark.master) from None
        raise
    _quiet_when_the_jvm_hangs_up(spark.sparkContext)
    with _interrupts_deferred():  # the first catalog access may create the metastore's database
        spark.sparkContext.setLogLevel("WARN")
        spark.sparkContext.setCheckpointDir(str(config.checkpoint_dir))
        ensure_schema(spark, config.lake.schema_name)
    return spark


def driver_class_archive(java: Path, conf: dict[str, str]) -> ClassArchive:
    """The class-data archive for a driver JVM run by ``java`` with PySpark's jars and ``spark.jars``."""
    import pyspark

    class_path = [*Path(pyspark.__file__).parent.joinpath("jars").glob("*.jar")]
    added_jars = [Path(jar) for jar in conf["spark.jars"].split(",") if jar]
    return class_archive(user_cache_dir(), java, class_path, added_jars)


def _quiet_when_the_jvm_hangs_up(context: SparkContext) -> None:
    """Say nothing when the JVM closes its end of PySpark's accumulator socket.

    On Ctrl-C the terminal signals the JVM too, and it can close that socket while the driver's
    accumulator thread still reads it; Python's socket server then prints an EOFError traceback after
    "interrupted". A broken connection there only means the JVM is stopping; other errors still print.
    """
    server = getattr(context, "_accumulatorServer", None)
    if server is None:
        return
    report = server.handle_error

    def handle_error(request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], EOFError | ConnectionError):
            report(request, client_address)

    server.handle_error = handle_error


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a first Ctrl-C back until the block has ended, then raise it; a second one raises at once.

    py4j ends an interrupted call by interrupting the JVM thread that runs it, and Derby abandons a
    database it is creating when interrupted: the half-made metastore fails every later command. After
    the block Ctrl-C raises KeyboardInterrupt at once, as Python's own handler does, and no longer goes
    to the handler a starting SparkContext installs, which cancels jobs through py4j from inside the
    handler, on the very connection of the call it interrupted ("reentrant call"), and logs tracebacks.
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        logger.warning("interrupted: stopping once Spark has started (Ctrl-C again to stop at once)")

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def stop_spark_session(interrupted: bool = False, timeout_s: float = JVM_EXIT_TIMEOUT_S) -> None:
    """Stop this process's Spark and return once the JVM it started has exited; then give up the metastore.

    ``SparkSession.stop()`` leaves the JVM running, and a JVM outliving its command still holds the
    embedded metastore when the next command starts. The JVM exits when its standard input closes
    (PySpark's gateway reads it for that) and is killed if it takes longer than ``timeout_s``. The JVM
    of an ``interrupted`` command logs the work it abandons as errors, which tell the user nothing:
    its log is switched off first. Under spark-submit the JVM is this process's parent and exits after
    it: only the session stops.
    """
    global _lease, _archive
    gateway = SparkContext._gateway  # noqa: SLF001 - PySpark keeps its JVM gateway only here
    if gateway is not None:
        try:
            if (session := SparkSession.getActiveSession()) is not None:
                if interrupted:
                    session.sparkContext.setLogLevel("OFF")
                _stop_accumulator_server_meanwhile(session.sparkContext)
                session.stop()
        except Py4JError:  # the JVM is gone or unreachable already; what matters is that it has exited
            pass
        if gateway.proc is not None:  # None under spark-submit, whose JVM ends its gateway itself
            gateway.shutdown()  # closes py4j's sockets first, so no thread reports them broken
            exited_cleanly = _wait_for_exit(gateway.proc, timeout_s)
            if _archive is not None:
                _archive.publish(exited_cleanly and not interrupted)
                _archive = None
        SparkContext._gateway = SparkContext._jvm = None  # noqa: SLF001 - a later session starts a JVM of its own
    if _lease is not None:
        _lease.release()
        _lease = None


def _stop_accumulator_server_meanwhile(context: SparkContext) -> None:
    """Stop PySpark's accumulator server on a thread of its own, while the JVM stops and exits.

    ``SparkContext.stop()`` stops it last and waits for it, and the server notices only between its
    one-second polls (half a second on average, measured 0.34 s of a one-clip scan); no task runs any
    more at this point, so nothing has an update to send it.
    """
    server = getattr(context, "_accumulatorServer", None)  # PySpark keeps it only here
    if server is None:
        return
    context._accumulatorServer = None  # type: ignore[assignment]  # noqa: SLF001 - stop() must not wait for it
    threading.Thread(target=server.shutdown, name="accumulator-server-stop", daemon=True).start()


@contextmanager
def spark_scope() -> Iterator[None]:
    """Stop a JVM that starts inside the block when the block ends, however it ends (Ctrl-C too), and
    wait for it to exit (:func:`stop_spark_session`); a turn on the metastore taken inside is given back
    even if no JVM started. A JVM running before the block is left alone."""
    running, held = SparkContext._gateway, _lease  # noqa: SLF001 - the JVM gateway, if one runs
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if SparkContext._gateway is not running or _lease is not held:  # noqa: SLF001
            stop_spark_session(interrupted)


def _wait_for_exit(process: subprocess.Popen, timeout_s: float) -> bool:
    """Close the JVM's standard input and wait for it to exit; whether it exited by itself with status 0."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        return process.wait(timeout=timeout_s) == 0
    except subprocess.TimeoutExpired:  # stuck in its shutdown hooks, which SIGTERM would only run again
        process.kill()
        process.wait()
        return False


def check_master_reachable(master: str) -> None:
    """Fail within seconds when a ``spark://`` or ``k8s://`` master accepts no connection, or a ``spark://``
    one does not answer as a Spark RPC server (another service on the port).

    Spark itself retries a standalone master for about a minute, then fails with "Cannot call methods on
    a stopped SparkContext" under a Java stack trace, which names neither the master nor the fix.
    """
    try:
        check_reachable(master)
    except SubmissionError as error:
        raise ConfigError(f"config key spark.master: {error}") from None
    except MasterUnreachableError as error:
        raise MasterUnreachableError(
            f"{error}; expected a running Spark master at that address (spark.master, or DEEPSIFT_SPARK__MASTER): "
            "start one (for this machine: `bash infra/standalone_cluster.sh start`) or run locally with local[*]"
        ) from None


def _is_stopped_context(error: Py4JJavaError) -> bool:
    """Whether the JVM gave up on the context: what Spark does when no standalone master registers the app."""
    java = error.java_exception
    return java.getClass().getName() == "java.lang.IllegalStateException" and "stopped SparkContext" in str(java.getMessage())


def _not_a_master(master: str) -> Exception:
    """What to say when a ``spark://`` address answered Spark's RPC but Spark gave up registering the
    application: a Spark process that is not a master listens there (a worker, say)."""
    return MasterUnreachableError(
        f"Spark master {master} accepted the connection but never registered this application (Spark gives up "
        "after about a minute): expected a Spark standalone master at that address, not another Spark process; check "
        "the port (spark.master, or DEEPSIFT_SPARK__MASTER) against the master's log, or run locally with local[*]"
    )
