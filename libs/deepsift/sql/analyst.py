"""Read-only SQL for analysts: a statement or a saved query -> rows, and those rows as CSV or JSON.

Statements run in a fresh read-only session (:func:`deepsift.lake.readonly.read_only_session`) whose
current schema is the config's, so ``SELECT * FROM latest_verdicts`` needs no schema; a write is
refused by the JVM extension, not here. Saved queries are the ``.sql`` files in ``queries/``: the
first comment line describes the query and each ``-- :name  help`` line declares a parameter. Spark
binds parameters as literals (their text is never pasted into the SQL); an omitted parameter is
NULL, which every saved query reads as "no filter". Spark's own message is kept for every failure
(a parse error, an unknown table, a refused write), without the Java stack trace.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException, ParseException
from pyspark.sql import Row, SparkSession

from deepsift.errors import DeepsiftError
from deepsift.lake.readonly import read_only_session

QUERIES_DIR = Path(__file__).with_name("queries")
DEFAULT_MAX_ROWS = 10_000
_PARAMETER_LINE = re.compile(r"--\s*:(?P<name>[a-z_][a-z0-9_]*)\s+(?P<help>\S.*)")
_PARAMETER_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class AnalystError(DeepsiftError, ValueError):
    """An analyst's request cannot be answered; the message says why (shown without a traceback)."""


class SqlError(AnalystError):
    """Spark refused or failed the statement: a parse error, an unknown name, a refused write."""


class UnknownSavedQueryError(AnalystError):
    """No saved query has that name; the message lists the known ones."""


class ParameterError(AnalystError):
    """A parameter is malformed or not declared by the saved query."""


@dataclass(frozen=True)
class SavedQuery:
    """A ``.sql`` file of ``queries/``: its name (the file's stem), description, parameters and text."""

    name: str
    description: str
    parameters: dict[str, str]
    """Parameter name -> help, in the order the file declares them."""
    sql: str


@dataclass(frozen=True)
class QueryResult:
    """Rows of one statement, at most ``max_rows`` of them; ``truncated`` when there were more."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def saved_queries() -> dict[str, SavedQuery]:
    """Every saved query, by name."""
    return {path.stem: _load_saved(path) for path in sorted(QUERIES_DIR.glob("*.sql"))}


def saved_query(name: str) -> SavedQuery:
    """The saved query called ``name``; an unknown name raises :class:`UnknownSavedQueryError`."""
    known = saved_queries()
    if name not in known:
        raise UnknownSavedQueryError(f"no saved query {name!r}; known: {', '.join(known)}")
    return known[name]


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """``["date=2026-11-24"]`` -> ``{"date": "2026-11-24"}``; a pair without ``=`` or a bad name is refused."""
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _PARAMETER_NAME.fullmatch(name.strip()):
            raise ParameterError(f"parameter {pair!r} is not NAME=VALUE (NAME: lower-case letters, digits, _)")
        parameters[name.strip()] = value
    return parameters


def run_statement(
    spark: SparkSession,
    schema: str,
    statement: str,
    parameters: Mapping[str, str | None] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> QueryResult:
    """Run one statement read-only in ``schema``; ``:name`` markers are bound from ``parameters``."""
    if max_rows < 1:
        raise AnalystError(f"the row limit must be at least 1, got {max_rows}")
    try:
        frame = read_only_session(spark, schema).sql(statement, args=dict(parameters) if parameters else None)
        rows = frame.take(max_rows + 1)
    except CapturedException as error:
        raise SqlError(_spark_message(error)) from None
    except Py4JJavaError as error:  # a JVM exception PySpark does not convert: its one-line summary
        raise SqlError(str(error.java_exception)) from None
    return QueryResult(list(frame.columns), [tuple(row) for row in rows[:max_rows]], len(rows) > max_rows)


def bind_saved(name: str, parameters: Mapping[str, str] | None = None) -> tuple[str, dict[str, str | None]]:
    """The saved query ``name``'s SQL and its parameters bound for :func:`run_statement`.

    A parameter the query does not declare is refused; a declared one left out is NULL.
    """
    query = saved_query(name)
    given = dict(parameters or {})
    unknown = sorted(set(given) - set(query.parameters))
    if unknown:
        declared = ", ".join(query.parameters) or "none"
        raise ParameterError(f"saved query {name!r} has no parameter {', '.join(unknown)}; its parameters: {declared}")
    return query.sql, {parameter: given.get(parameter) for parameter in query.parameters}


def to_csv(result: QueryResult) -> str:
    """A header line and one line per row; NULL is empty, nested values are JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(_csv_cell(value) for value in row)
    return out.getvalue()


def to_json(result: QueryResult) -> str:
    """A JSON array with one object per row (column -> value); dates and timestamps in ISO 8601."""
    return json.dumps([dict(zip(result.columns, map(plain, row), strict=True)) for row in result.rows], indent=2, ensure_ascii=False)


def plain(value: Any) -> Any:
    """``value`` as JSON-compatible Python: ISO strings for dates, base64 for binary, dicts for structs."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Row):
        return {key: plain(item) for key, item in value.asDict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _csv_cell(value: Any) -> Any:
    converted = plain(value)
    if converted is None:
        return ""
    return json.dumps(converted, ensure_ascii=False) if isinstance(converted, (list, dict)) else converted


def _spark_message(error: CapturedException) -> str:
    """Spark's message: a parse error keeps its pointer into the statement; an analysis error drops the plan."""
    if isinstance(error, ParseException) or error.getCondition() is None:
        return str(error).strip()
    return error.getMessage()


def _load_saved(path: Path) -> SavedQuery:
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    if not header:
        raise ValueError(f"saved query {path.name} must start with a comment line describing it")
    parameters = {
        match["name"]: match["help"].strip()
        for match in (_PARAMETER_LINE.fullmatch(line.strip()) for line in header[1:])
        if match
    }
    return SavedQuery(path.stem, header[0].lstrip("-").strip(), parameters, text)
