"""The Python side of a command's console log: warnings and errors on standard error, each said once.

Spark's side is the driver's log4j configuration (``lake/log4j2.properties``, chosen in
:func:`deepsift.lake.session.spark_conf`).
"""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


class OnceFilter(logging.Filter):
    """Pass a record only the first time its logger, level and text occur: a warning raised for every
    table, task or call is one fact, and said once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def not_an_interrupt(record: logging.LogRecord) -> bool:
    """False for a record about a Ctrl-C (py4j logs the call it cut short, with a traceback): the command
    says "interrupted" itself."""
    error = record.exc_info[1] if record.exc_info else None
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return False
        error = error.__context__
    return True


QUERY_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
"""PySpark's loggers that print every failed query as an ERROR with its Java stack trace, also a failure
the caller expects and handles; the exception itself carries the message, which a command prints."""


def configure_logging() -> None:
    """Warnings and errors of every Python logger on standard error, once each and none about a Ctrl-C
    (no handler is added where the root logger has one already, as under a test runner), and PySpark's
    copies of query errors (:data:`QUERY_ERROR_LOGGERS`) silenced."""
    from pyspark.logger import PySparkLogger

    for name in QUERY_ERROR_LOGGERS:
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(OnceFilter())
    handler.addFilter(not_an_interrupt)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
