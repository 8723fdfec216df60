"""What every deepsift DAG shares: owner, retry policy, timeouts, the Spark pool and the DAG settings.

Standard library only: the DAG files import this module while Airflow parses them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

OWNER = "deepsift"
SPARK_CONN_ID = "spark_default"
SPARK_POOL = "deepsift_spark"
"""One slot by default (``infra/airflow_standalone.sh`` creates it): an embedded Derby metastore admits
one JVM at a time, so the DAGs' Spark jobs must not overlap. Raise the slots with a metastore service."""
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)
"""The earliest logical date: backfills reach back to it, catch-up is off."""
RETRIES = 2
RETRY_DELAY = timedelta(minutes=5)
RETRY_BACKOFF = 2.0
"""Multiplier between consecutive retry delays: 5 min, then 10 min (capped by ``MAX_RETRY_DELAY``)."""
MAX_RETRY_DELAY = timedelta(hours=1)
TASK_TIMEOUT = timedelta(minutes=15)
"""Default ``execution_timeout``; Spark tasks set their own, longer one."""


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults for a deepsift DAG: owner, retries with exponential back-off, a timeout."""
    return {
        "owner": OWNER,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": RETRY_BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": TASK_TIMEOUT,
        **overrides,
    }


def dag_options(
    dag_id: str,
    dagrun_timeout: timedelta,
    topic: str,
    doc_md: str | None,
    params: dict[str, Any] | None = None,
    **task_overrides: Any,
) -> dict[str, Any]:
    """The ``@dag`` arguments of a deepsift DAG but its schedule: no catch-up, one active run, tags
    ``deepsift`` and ``topic``.

    ``task_overrides`` change the task defaults of :func:`default_args` (the retries, say).
    """
    return {
        "dag_id": dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "dagrun_timeout": dagrun_timeout,
        "default_args": default_args(**task_overrides),
        "tags": ["deepsift", topic],
        "doc_md": doc_md,
        "params": params or {},
    }
