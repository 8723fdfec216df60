"""The two tasks a Spark job of a DAG is: prepare its submission at run time, then spark-submit it.

DAG files declare a job with :func:`spark_job` and a function that returns the job's arguments
(its name is the prepare task's id, its docstring the task's docs). When the task runs, the
arguments are validated, :func:`deepsift.orchestration.submit.build_submission` loads the deepsift
config and the master of the ``spark_default`` connection, and the application, arguments, Spark
conf and environment go to ``SparkSubmitOperator`` as XCom (``multiple_outputs``). The conf must
reach spark-submit: the driver JVM's options (memory, the metastore's Derby home, its log
configuration) are fixed before the job's own Python starts. Invalid input fails the task at once,
without retries. Parsing a DAG imports only Airflow, the Spark provider's operator and
:mod:`deepsift.orchestration.defaults`; everything else is imported when a task runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import XComArg, task

from deepsift.orchestration.defaults import SPARK_CONN_ID, SPARK_POOL

JobArgs = Callable[..., list[str]]
"""A job's arguments from the prepare task's inputs (XCom values, ``params``, context such as ``run_id``)."""
SubmissionCheck = Callable[[list[str], dict[str, str]], None]
"""A further check of a job's arguments against the Spark conf it will run with; raises to refuse them."""


def spark_job(
    jobs_dir: Path,
    job: str,
    job_args: JobArgs,
    *,
    doc_md: str,
    execution_timeout: timedelta,
    check: SubmissionCheck | None = None,
    **prepare_options: Any,
) -> Callable[..., tuple[XComArg, SparkSubmitOperator]]:
    """A function that adds ``job_args``' prepare task and the ``jobs/<job>.py`` spark-submit task to a DAG.

    Call it inside the DAG with the prepare task's inputs; it returns both tasks, for dependencies.
    ``prepare_options`` go to the prepare task (a trigger rule, say); ``check`` refuses arguments the
    conf would make fail (a VACUUM retention Delta refuses), before anything is submitted.
    """

    @functools.wraps(job_args)
    def prepare(*args: Any, **kwargs: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from deepsift.orchestration.submit import SubmissionError, build_submission, spark_master

        try:
            submission = build_submission(jobs_dir, job, job_args(*args, **kwargs), spark_master(SPARK_CONN_ID))
            if check is not None:
                check(submission.application_args, submission.conf)
        except SubmissionError as error:
            raise AirflowFailException(str(error)) from error
        return submission.as_dict()

    prepare_task = task(multiple_outputs=True, **prepare_options)(prepare)

    def add(*args: Any, **kwargs: Any) -> tuple[XComArg, SparkSubmitOperator]:
        submission: Any = prepare_task(*args, **kwargs)  # an XComArg of the returned dict, indexed by key
        submit = SparkSubmitOperator(
            task_id=job,
            doc_md=doc_md,
            conn_id=SPARK_CONN_ID,
            application=submission["application"],
            application_args=submission["application_args"],
            conf=submission["conf"],
            env_vars=submission["env_vars"],
            name=f"deepsift-{job}",
            pool=SPARK_POOL,
            execution_timeout=execution_timeout,
        )
        return submission, submit

    return add
