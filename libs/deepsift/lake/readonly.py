"""Read-only SQL for analysts: the Spark SQL extension that refuses every statement but a query.

The guard lives once, in the JVM (``java/ReadOnlySqlExtension.java``): a check rule that runs after
analysis and before anything executes, so it holds for any client of a session (PySpark, the JDBC
server, DataFrame writes). Every deepsift session loads it (:func:`deepsift.lake.session.spark_conf`);
it enforces only where the session's :data:`READ_ONLY_CONF` is ``true`` and then refuses to be
switched off. The extension is compiled with ``javac`` against the pyspark wheel's jars when deepsift
is installed (``python -m deepsift.lake.readonly``, which ``make install`` and the image build run)
and cached under ``home/cache/jars``, keyed by a hash of its source and the pyspark version, so no
binary is committed and an edit of the source rebuilds it. A session that finds no jar builds it
where a JDK is present; with only a Java runtime it fails naming the install command.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from deepsift.errors import DeepsiftError
from deepsift.files import replaced_on_success
from deepsift.lake.jdk import jdk_tool

READ_ONLY_CONF = "spark.deepsift.sql.readOnly"
"""The session setting that switches enforcement on (the Java source declares the same key)."""
EXTENSION_CLASS = "deepsift.lake.ReadOnlySqlExtension"
"""The class named in ``spark.sql.extensions``."""
EXTENSION_SOURCE = Path(__file__).with_name("java") / "ReadOnlySqlExtension.java"
JDK_PACKAGE = "openjdk-17-jdk-headless"
"""The Debian package that provides ``javac``."""
BUILD_COMMAND = "python -m deepsift.lake.readonly"
"""Builds the extension into the configured home's cache (``make install`` runs it)."""


class JavacNotFoundError(DeepsiftError, RuntimeError):
    """No Java compiler: the read-only SQL extension cannot be built."""


class ExtensionBuildError(DeepsiftError, RuntimeError):
    """``javac`` rejected the extension's source (a Spark upgrade that changed an API, usually)."""


def ensure_extension_jar(cache_dir: Path) -> Path:
    """The jar of the read-only SQL extension, compiled once per source and pyspark version.

    For example (the first call compiles)::

        ensure_extension_jar(Path(".deepsift/cache/jars"))
        # PosixPath('.../deepsift-readonly-sql-3f2a9c0d1e4b5a67.jar')
    """
    target = extension_jar_path(cache_dir)
    if target.exists():
        return target
    javac = jdk_tool("javac")
    if javac is None:
        raise JavacNotFoundError(
            f"deepsift's read-only SQL extension is not built in {cache_dir} and there is no Java 17 compiler "
            f"(javac) to build it: install a JDK (Debian: `apt-get install {JDK_PACKAGE}`) or point JAVA_HOME at "
            f"one, or run `{BUILD_COMMAND}` (part of `make install`) with this home where a JDK is installed"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    spark_jars = Path(pyspark.__file__).parent / "jars"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as build:
        classes = Path(build) / "classes"
        compiled = subprocess.run(
            [str(javac), "--release", "17", "-encoding", "UTF-8", "-cp", f"{spark_jars}/*", "-d", str(classes),
             str(EXTENSION_SOURCE)],
            capture_output=True, text=True, check=False,
        )
        if compiled.returncode != 0:
            raise ExtensionBuildError(
                f"javac could not compile {EXTENSION_SOURCE.name} against pyspark {pyspark.__version__}:\n"
                f"{compiled.stderr.strip()[-3000:]}"
            )
        # Published atomically: a concurrent build of the same source writes the same bytes.
        with replaced_on_success(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: deepsift\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
    return target


def extension_jar_path(cache_dir: Path) -> Path:
    """Where :func:`ensure_extension_jar` caches the extension's jar for this source and pyspark version."""
    source = EXTENSION_SOURCE.read_bytes()
    digest = hashlib.sha256(source + pyspark.__version__.encode()).hexdigest()[:16]
    return cache_dir / f"deepsift-readonly-sql-{digest}.jar"


def read_only_session(spark: SparkSession, schema: str) -> SparkSession:
    """A new session over ``spark``'s catalog that may only query, with ``schema`` as its current schema.

    The caller's session is left as it was; the new one cannot be switched back (the extension
    refuses ``SET``/``RESET`` of :data:`READ_ONLY_CONF`).
    """
    session = spark.newSession()
    session.catalog.setCurrentDatabase(schema)
    session.conf.set(READ_ONLY_CONF, "true")
    return session


def main() -> int:
    """Build the extension into the configured home's cache (``DEEPSIFT_HOME``, ``DEEPSIFT_CONFIG``).

    Run once at install time, where a JDK is present, so that later sessions need only a Java runtime.
    """
    import sys

    from deepsift.config import load_config

    try:
        print(ensure_extension_jar(load_config().cache_dir / "jars"))
    except (JavacNotFoundError, ExtensionBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
