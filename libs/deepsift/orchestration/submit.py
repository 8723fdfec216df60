"""What a DAG hands ``SparkSubmitOperator``: the job, its validated arguments, Spark conf and environment.

Everything is computed when the task runs, never when the DAG is parsed: the deepsift configuration
is loaded in the Airflow worker (``DEEPSIFT_*`` variables, ``DEEPSIFT_CONFIG``) and
:func:`deepsift.lake.session.submitted_driver_conf` turns it into the ``--conf`` settings (Delta jars,
catalog, warehouse, driver memory, the class-data archive a command's JVM wrote here), after
:func:`deepsift.lake.session.ensure_spark_jars` made the jars exist here, where spark-submit starts the
driver. The master comes from the Airflow connection; the job receives it as
``DEEPSIFT_SPARK__MASTER``, with ``DEEPSIFT_HOME`` made absolute, so that the job's own session and
the conf agree on where Spark runs and where the lakehouse lives. A standalone or Kubernetes master
that accepts no connection fails the task before spark-submit starts (Spark itself would wait about
a minute before giving up); the task's retries then try again with back-off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

# The master check lives below both this module and the session factory; its names stay importable here.
from deepsift.spark_master import MasterUnreachableError as MasterUnreachableError
from deepsift.spark_master import SubmissionError, check_reachable

TRIGGER_PATTERN = re.compile(r"airflow:[A-Za-z0-9_.-]+/[A-Za-z0-9_.~:+-]+")
"""``airflow:<dag_id>/<run_id>``, both in the characters Airflow allows by default."""
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass(frozen=True)
class SparkSubmission:
    """One ``spark-submit``: application file, arguments, ``--conf`` settings and environment."""

    application: str
    application_args: list[str]
    conf: dict[str, str]
    env_vars: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def spark_master(conn_id: str) -> str:
    """The master that ``spark-submit`` gets from the Airflow connection, resolved as the provider does.

    A missing connection is an error here, where the provider would quietly fall back to ``yarn``.
    """
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        SparkSubmitHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SubmissionError(
            f"Airflow connection {conn_id} is not defined; for a local Spark: "
            f"AIRFLOW_CONN_{conn_id.upper()}='{{\"conn_type\": \"spark\", \"host\": \"local[*]\"}}'"
        ) from None
    return SparkSubmitHook(conn_id=conn_id)._connection["master"]  # noqa: SLF001 - the provider's own resolution


def build_submission(
    jobs_dir: Path, job: str, args: Sequence[str], master: str, environ: Mapping[str, str] | None = None
) -> SparkSubmission:
    """The submission of ``jobs/<job>.py`` with ``args`` on ``master``, configured from ``environ``."""
    from deepsift.config import ConfigError, load_config
    from deepsift.lake.session import ensure_spark_jars, submitted_driver_conf

    application = jobs_dir / f"{job}.py"
    if not application.is_file():
        raise SubmissionError(f"no Spark job {application}")
    environ = dict(os.environ if environ is None else environ)
    environ["DEEPSIFT_SPARK__MASTER"] = master
    try:
        config = load_config(environ=environ)
    except ConfigError as error:
        raise SubmissionError(f"{error} (master from the Airflow connection: {master})") from None
    check_reachable(master)
    ensure_spark_jars(config)  # spark-submit starts the driver JVM here, with these jars on its class path
    return SparkSubmission(
        application=str(application),
        application_args=_checked(args),
        conf=submitted_driver_conf(config),
        env_vars={"DEEPSIFT_SPARK__MASTER": master, "DEEPSIFT_HOME": str(config.home.resolve())},
    )


def scan_args(folder: str, scan_date: date, trigger: str) -> list[str]:
    """``jobs/scan.py`` arguments: ingest ``folder``, record ``scan_date`` and who triggered the run."""
    if not TRIGGER_PATTERN.fullmatch(trigger):
        raise SubmissionError(f"trigger {trigger!r} is not airflow:<dag_id>/<run_id> in the characters Airflow allows")
    return [folder, "--date", scan_date.isoformat(), "--trigger", trigger]


def report_args(report_date: date) -> list[str]:
    """``jobs/report.py`` arguments: the moderation report of ``report_date``, at its default path."""
    return ["--date", report_date.isoformat()]


def train_args(
    architecture: str,
    epochs: int,
    input_size: int | None = None,
    max_steps: int | None = None,
    since: str | None = None,
    until: str | None = None,
    labels_table: str | None = None,
    corpus: str | None = None,
) -> list[str]:
    """``jobs/train.py`` arguments; the new version gets the ``@challenger`` alias.

    ``corpus`` adds a folder of real faces to the platform's crops (``--corpus``)."""
    if not IDENTIFIER_PATTERN.fullmatch(architecture):
        raise SubmissionError(f"architecture {architecture!r} is not a name")
    args = ["--architecture", architecture, "--epochs", str(_positive("epochs", epochs)), "--alias", "challenger"]
    if input_size is not None:
        args += ["--input-size", str(_positive("input_size", input_size))]
    if max_steps is not None:
        args += ["--max-steps", str(_positive("max_steps", max_steps))]
    for flag, value in (("--since", since), ("--until", until)):
        if value:
            args += [flag, _iso_date(flag.lstrip("-"), value).isoformat()]
    if labels_table:
        if not IDENTIFIER_PATTERN.fullmatch(labels_table):
            raise SubmissionError(f"labels_table {labels_table!r} is not a table name (schema.table)")
        args += ["--labels-table", labels_table]
    if corpus:
        args += ["--corpus", corpus]
    return args


def _checked(args: Sequence[str]) -> list[str]:
    """Arguments as strings, none empty or holding control characters."""
    checked = [str(arg) for arg in args]
    for arg in checked:
        if not arg or any(ord(char) < 32 for char in arg):
            raise SubmissionError(f"invalid Spark job argument {arg!r}")
    return checked


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SubmissionError(f"{name} must be a positive integer, given {value!r}")
    return value


def _iso_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SubmissionError(f"{name} must be a date YYYY-MM-DD, given {value!r}") from None
