"""Moderators' CSV: pending items out, decisions in.

``export_pending`` writes the pending queue items, highest priority first, with empty ``decision``,
``reviewer`` and ``note`` columns for the moderator to fill in. ``read_decision_file`` and
``import_decisions`` take the filled-in file back. The file is accepted whole or not at all: every
line is checked (UTF-8, CSV syntax, the exact header, a known queue item, a known decision, a reviewer,
the note's length, no item twice) and any problem rejects the file, writing nothing, with every bad
line and why. A valid file is applied with one MERGE, so a reader never sees half an import.

Rules a moderator relies on:

- A row whose ``decision`` is empty is skipped: a moderator may return the file with only some rows
  decided. A row with a note but no decision is an error, since its note would be lost.
- Only the key (``video_id``, ``model_name``, ``model_version``) and the three decision columns are
  read; the other columns are there to help the moderator and may be edited or reformatted freely.
- Any queue item may be decided, also one decided before: the last import wins, and ``reviewed_at``
  becomes the time of that import. That is how a decision is corrected.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.errors import DeepsiftError
from deepsift.lake.tables import MODERATION_QUEUE, VIDEOS, ReviewStatus, ensure_tables, merge_update
from deepsift.review.queue import DECISIONS, ensure_review_tables

KEY_COLUMNS = MODERATION_QUEUE.key
DECISION_COLUMNS = ("decision", "reviewer", "note")
HEADER = (*KEY_COLUMNS, "uri", "verdict", "score", "priority", "scan_date", *DECISION_COLUMNS)
"""The columns of the exchanged CSV, in order; an imported file must start with exactly this header."""

NOTE_MAX_CHARS = 2000
REVIEWER_MAX_CHARS = 200

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ReviewFileError(DeepsiftError, ValueError):
    """A decisions file was rejected; nothing was written. ``problems`` holds (line number, why)."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        self.problems = sorted(problems)
        lines = "\n".join(f"  line {line}: {why}" for line, why in self.problems)
        super().__init__(f"{path} rejected, nothing imported ({len(self.problems)} problems):\n{lines}")


@dataclass(frozen=True)
class DecisionRow:
    """One data line of a decisions file whose key could be read; ``decision`` None means skipped."""

    line: int
    video_id: str
    model_name: str
    model_version: int
    decision: ReviewStatus | None
    reviewer: str
    note: str | None


@dataclass(frozen=True)
class DecisionFile:
    """A decisions file read and checked line by line, before it is compared with the queue."""

    path: Path
    rows: list[DecisionRow]
    problems: list[tuple[int, str]]


@dataclass(frozen=True)
class ImportSummary:
    decided: int
    """Queue items updated."""
    skipped: int
    """Rows left without a decision."""
    by_decision: dict[str, int]


def export_pending(spark: SparkSession, config: Config, out: TextIO, limit: int | None = None) -> int:
    """Write the pending items as CSV to ``out``, highest priority first (at most ``limit``); returns
    how many were written. A URI that a spreadsheet would run as a formula is written with a leading
    ``'``, so opening the file cannot execute an uploader's file name."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, given {limit}")
    schema = config.lake.schema_name
    ensure_review_tables(spark, schema)
    ensure_tables(spark, schema, (VIDEOS,))
    pending = (
        spark.table(MODERATION_QUEUE.qualified(schema))
        .where(F.col("status") == str(ReviewStatus.PENDING))
        .join(spark.table(VIDEOS.qualified(schema)).select("video_id", "uri"), "video_id", "left")
        .orderBy(F.desc("priority"), "scan_date", *KEY_COLUMNS)
    )
    if limit is not None:
        pending = pending.limit(limit)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    written = 0
    for row in pending.collect():
        writer.writerow(
            [
                row.video_id,
                row.model_name,
                row.model_version,
                _spreadsheet_safe(row.uri or ""),
                row.verdict,
                f"{row.score:.6f}",
                f"{row.priority:.6f}",
                row.scan_date.isoformat(),
                "",
                "",
                "",
            ]
        )
        written += 1
    return written


def read_decision_file(path: Path) -> DecisionFile:
    """Read and check every line of a decisions file without the queue.

    Problems that leave no rows to check (not UTF-8, broken CSV, a wrong header) raise
    :class:`ReviewFileError` at once; problems of single rows are collected in ``problems`` so that
    :func:`import_decisions` reports them together with rows unknown to the queue.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReviewFileError(path, _undecodable_lines(raw)) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                records.append((start, next(reader)))
            except StopIteration:
                break
    except csv.Error as error:
        raise ReviewFileError(path, [(start, f"not valid CSV: {error}")]) from None
    if not records:
        raise ReviewFileError(path, [(1, f"empty file; the first line must be the header {','.join(HEADER)}")])
    header_line, header = records[0]
    if tuple(name.strip() for name in header) != HEADER:
        raise ReviewFileError(
            path, [(header_line, f"header must be {','.join(HEADER)}; found {','.join(header)!r}")]
        )
    rows: list[DecisionRow] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[tuple[str, str, int], int] = {}
    for line, fields in records[1:]:
        if not fields:
            continue  # a blank line, as spreadsheets sometimes leave at the end
        row, row_problems = _check_row(line, fields)
        problems += [(line, why) for why in row_problems]
        if row is None:
            continue
        key = (row.video_id, row.model_name, row.model_version)
        if key in first_line:
            problems.append((line, f"duplicate of line {first_line[key]} (the same video and model version)"))
            continue
        first_line[key] = line
        rows.append(row)
    return DecisionFile(path, rows, problems)


def import_decisions(spark: SparkSession, config: Config, decisions: DecisionFile) -> ImportSummary:
    """Apply a checked decisions file to the queue with one MERGE, or raise :class:`ReviewFileError`
    (writing nothing) if any row had a problem or names an item that is not in the queue."""
    schema = config.lake.schema_name
    ensure_review_tables(spark, schema)
    queue = spark.table(MODERATION_QUEUE.qualified(schema))
    keys = spark.createDataFrame(
        [(row.line, row.video_id, row.model_name, row.model_version) for row in decisions.rows],
        "line INT, video_id STRING, model_name STRING, model_version INT",
    )
    unknown = keys.join(queue, list(KEY_COLUMNS), "left_anti").collect()
    problems = decisions.problems + [
        (row.line, f"video {row.video_id!r} of model {row.model_name!r} version {row.model_version} is not queued")
        for row in unknown
    ]
    if problems:
        raise ReviewFileError(decisions.path, problems)
    decided = [row for row in decisions.rows if row.decision is not None]
    updated = 0
    if decided:
        reviewed_at = datetime.now(UTC).replace(tzinfo=None)
        updates = spark.createDataFrame(
            [
                (row.video_id, row.model_name, row.model_version, str(row.decision), row.reviewer, row.note)
                for row in decided
            ],
            "video_id STRING, model_name STRING, model_version INT, status STRING, reviewer STRING, note STRING",
        ).withColumn("reviewed_at", F.lit(reviewed_at).cast("timestamp"))
        updated = merge_update(spark, schema, MODERATION_QUEUE, updates, ("status", "reviewer", "reviewed_at", "note"))
    return ImportSummary(
        decided=updated,
        skipped=len(decisions.rows) - len(decided),
        by_decision=dict(Counter(str(row.decision) for row in decided)),
    )


def _check_row(line: int, fields: list[str]) -> tuple[DecisionRow | None, list[str]]:
    """The row (None when its key cannot be read) and what is wrong with it."""
    if len(fields) != len(HEADER):
        return None, [f"{len(fields)} fields, expected {len(HEADER)}"]
    values = dict(zip(HEADER, (field.strip() for field in fields), strict=True))
    problems = []
    for column in ("video_id", "model_name"):
        if not values[column]:
            problems.append(f"{column} is empty")
    try:
        model_version = int(values["model_version"])
    except ValueError:
        problems.append(f"model_version {values['model_version']!r} is not a whole number")
        model_version = None
    decision: ReviewStatus | None = None
    choices = ", ".join(str(status) for status in DECISIONS)
    if values["decision"]:
        if values["decision"] in DECISIONS:
            decision = ReviewStatus(values["decision"])
        else:
            problems.append(f"decision {values['decision']!r} is not one of {choices}")
        if not values["reviewer"]:
            problems.append("reviewer is empty")
    elif values["note"]:
        problems.append(f"a note without a decision would be lost; fill in decision ({choices}) or clear the note")
    if len(values["reviewer"]) > REVIEWER_MAX_CHARS:
        problems.append(f"reviewer has {len(values['reviewer'])} characters, at most {REVIEWER_MAX_CHARS}")
    if len(values["note"]) > NOTE_MAX_CHARS:
        problems.append(f"note has {len(values['note'])} characters, at most {NOTE_MAX_CHARS}")
    if model_version is None or not values["video_id"] or not values["model_name"]:
        return None, problems
    row = DecisionRow(
        line=line,
        video_id=values["video_id"],
        model_name=values["model_name"],
        model_version=model_version,
        decision=decision,
        reviewer=values["reviewer"],
        note=values["note"] or None,
    )
    return row, problems


def _undecodable_lines(raw: bytes) -> list[tuple[int, str]]:
    """Every line of ``raw`` that is not UTF-8, with the first bad byte."""
    problems = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = f"0x{line[error.start]:02x}"
            problems.append((number, f"not UTF-8 (byte {byte} at column {error.start + 1}); save the file as UTF-8"))
    return problems


def _spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
