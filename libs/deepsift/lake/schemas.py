"""Row shapes in both of the forms deepsift needs: Spark DDL and Arrow schemas, each derived from the other.

A Spark UDF over Arrow (``mapInArrow``) is given its output as a Spark DDL string and builds its batches
with an Arrow schema; declaring both by hand lets them drift apart. So a row shape is written once,
either as DDL (a table's columns, :class:`deepsift.lake.tables.TableSpec`) or as an Arrow schema, and
the other form comes from :func:`arrow_schema` or :func:`spark_ddl`. This module needs only pyarrow, so
that executors' Spark-free code can use it.

>>> spark_ddl(arrow_schema("video_id STRING NOT NULL, bbox STRUCT<x: FLOAT, y: FLOAT>, uris ARRAY<STRING>"))
'video_id string not null, bbox struct<x: float, y: float>, uris array<string>'
"""

from __future__ import annotations

import re

import pyarrow as pa

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
"""Spark's simple types and the Arrow types Spark exchanges them as (timestamps in UTC microseconds)."""
_SPARK_TYPES = {arrow: spark for spark, arrow in _ARROW_TYPES.items()}
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[<>,:]")


def arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema of a Spark DDL column list (``name type [NOT NULL], ...``; struct fields may be
    written ``name: type``)."""
    parser = _DdlParser(_TOKEN.findall(ddl))
    fields = parser.fields()
    if parser.position != len(parser.tokens):
        raise ValueError(f"unexpected {parser.tokens[parser.position]!r} in column list {ddl!r}")
    return pa.schema(fields)


def spark_ddl(schema: pa.Schema) -> str:
    """The Spark DDL column list of an Arrow schema (``name type, ...``), as ``mapInArrow`` takes it."""
    return ", ".join(_column(field, " ") for field in schema)


def nullable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every column nullable: the rows a stage computes before a table checks them."""
    return pa.schema([field.with_nullable(True) for field in schema])


def _column(field: pa.Field, separator: str) -> str:
    return f"{field.name}{separator}{_spark_type(field.type)}{'' if field.nullable else ' not null'}"


def _spark_type(kind: pa.DataType) -> str:
    if pa.types.is_list(kind):
        return f"array<{_spark_type(kind.value_type)}>"
    if pa.types.is_map(kind):
        return f"map<{_spark_type(kind.key_type)}, {_spark_type(kind.item_type)}>"
    if pa.types.is_struct(kind):
        return f"struct<{', '.join(_column(kind.field(index), ': ') for index in range(kind.num_fields))}>"
    return _SPARK_TYPES[kind]


class _DdlParser:
    """Recursive descent over the tokens of a DDL column list."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def fields(self) -> list[pa.Field]:
        fields = []
        while True:
            name = self._take()
            if self._peek() == ":":
                self._take()
            kind = self._type()
            not_null = self._peek().lower() == "not"
            if not_null:
                self._take()
                self._take("null")
            fields.append(pa.field(name, kind, nullable=not not_null))
            if self._peek() != ",":
                return fields
            self._take()

    def _type(self) -> pa.DataType:
        name = self._take().lower()
        if name not in ("array", "map", "struct"):
            return _ARROW_TYPES[name]
        self._take("<")
        if name == "array":
            kind: pa.DataType = pa.list_(self._type())
        elif name == "map":
            key = self._type()
            self._take(",")
            kind = pa.map_(key, self._type())
        else:
            kind = pa.struct(self.fields())
        self._take(">")
        return kind

    def _peek(self) -> str:
        return self.tokens[self.position] if self.position < len(self.tokens) else ""

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if not token or (expected is not None and token.lower() != expected):
            raise ValueError(f"expected {expected or 'more'} at token {self.position} of {' '.join(self.tokens)!r}")
        self.position += 1
        return token
