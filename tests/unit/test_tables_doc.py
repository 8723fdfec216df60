"""``docs/tables.md`` documents every column of every table and view, with the spec's type, key and
partitioning; no Spark needed (the specs are plain declarations)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepsift.lake.tables import EVERY_TABLE, TableSpec, _split_top_level
from deepsift.sql.views import EVERY_VIEW, ViewSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "tables.md"
_ROW = re.compile(r"\|\s*`(?P<name>[^`]+)`\s*\|\s*`(?P<type>[^`]+)`\s*\|\s*(?P<meaning>[^|]*?)\s*\|")


def _sections(text: str) -> dict[str, str]:
    """``### `name` `` headings -> the text up to the next heading."""
    parts = re.split(r"^#{2,3} ", text, flags=re.MULTILINE)
    sections = {}
    for part in parts:
        heading, _, body = part.partition("\n")
        match = re.fullmatch(r"`([a-z_]+)`", heading.strip())
        if match:
            sections[match.group(1)] = body
    return sections


def _declared(spec: TableSpec | ViewSpec) -> dict[str, str]:
    """Column -> type as the spec declares it, whitespace normalised."""
    return {
        column.split(None, 1)[0]: " ".join(column.split(None, 1)[1].split()).upper()
        for column in _split_top_level(spec.columns)
    }


def _documented(body: str) -> dict[str, tuple[str, str]]:
    return {
        row["name"]: (" ".join(row["type"].split()).upper(), row["meaning"])
        for row in map(_ROW.match, body.splitlines())
        if row
    }


def _names(line: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", line))


SECTIONS = _sections(DOC.read_text())


@pytest.mark.parametrize("spec", [*EVERY_TABLE, *EVERY_VIEW], ids=lambda spec: spec.name)
def test_every_column_is_documented_with_its_type(spec):
    assert spec.name in SECTIONS, f"docs/tables.md has no section ### `{spec.name}`"
    documented = _documented(SECTIONS[spec.name])
    declared = _declared(spec)
    missing = [name for name in declared if name not in documented]
    stale = [name for name in documented if name not in declared]
    assert not missing, f"{spec.name}: columns not documented: {missing}"
    assert not stale, f"{spec.name}: documented columns the spec does not have: {stale}"
    wrong_types = {name: (documented[name][0], kind) for name, kind in declared.items() if documented[name][0] != kind}
    assert not wrong_types, f"{spec.name}: documented type differs from the spec (doc, spec): {wrong_types}"
    assert all(meaning for _, meaning in documented.values()), f"{spec.name}: a column has no meaning"


@pytest.mark.parametrize("spec", EVERY_TABLE, ids=lambda spec: spec.name)
def test_key_and_partitioning_match_the_spec(spec):
    lines = SECTIONS.get(spec.name, "").splitlines()
    key = [line for line in lines if line.startswith("Key:")]
    partition = [line for line in lines if line.startswith("Partitioned by:")]
    assert key and partition, f"{spec.name}: needs a 'Key:' and a 'Partitioned by:' line"
    assert _names(key[0]) == spec.key
    assert _names(partition[0]) == ((spec.partitioned_by,) if spec.partitioned_by else ())

