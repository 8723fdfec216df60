"""The moderation queue on the shared scanned lake: what the scan queued, the CSV round trip through
the command line, whole-file rejection of bad decisions, and decisions as training labels.

Other modules read the same ``t_scanned`` schema, so these tests write only ``moderation_queue`` and
assert on the rows they change; decisions are made on items chosen from the queue at run time.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from deepsift.cli import main
from deepsift.lake.tables import MODERATION_QUEUE
from deepsift.review.decisions import HEADER, NOTE_MAX_CHARS, _spreadsheet_safe
from deepsift.review.queue import enqueue_flagged, serves
from deepsift.sql.views import REVIEW_LABELS
from deepsift.stages.train import DataSelection, _labelled_videos

FLAGGED = ("suspicious", "manipulated")
KEY = ("video_id", "model_name", "model_version")
TRICKY_NOTE = 'face swap, "obvious" at 0:03; Gesicht verändert, 顔の入れ替え\nsecond line'


@pytest.fixture(scope="module")
def cli_config(scanned_lake, tmp_path_factory) -> str:
    """A YAML config for ``deepsift --config``: the scanned lake's home, schema and model."""
    path = tmp_path_factory.mktemp("review-cli") / "deepsift.yaml"
    path.write_text(yaml.safe_dump(scanned_lake.config.model_dump(mode="json")))
    return str(path)


def _queue(spark, scanned_lake):
    return spark.table(MODERATION_QUEUE.qualified(scanned_lake.config.lake.schema_name))


def _snapshot(spark, scanned_lake):
    """Every queue row and the table's Delta version: equal snapshots mean nothing was written."""
    name = MODERATION_QUEUE.qualified(scanned_lake.config.lake.schema_name)
    rows = sorted(tuple(row) for row in spark.table(name).collect())
    return rows, DeltaTable.forName(spark, name).history(1).first()["version"]


def _export(cli_config, path, *extra) -> list[dict[str, str]]:
    assert main(["--config", cli_config, "review", "export", "--out", str(path), *extra]) == 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return list(reader)


def _write(path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)


def _key(row) -> tuple[str, str, int]:
    return (row["video_id"], row["model_name"], int(row["model_version"]))


def test_the_serving_scan_queued_exactly_its_flagged_verdicts(spark, scanned_lake):
    run_id = scanned_lake.outcome.run_id
    schema = scanned_lake.config.lake.schema_name
    flagged = (
        spark.table(f"{schema}.verdicts").where((F.col("run_id") == run_id) & F.col("verdict").isin(*FLAGGED)).collect()
    )
    assert {row.verdict for row in flagged} == set(FLAGGED), "the fixture should flag both kinds"
    assert scanned_lake.outcome.enqueued == len(flagged)

    queued = {_key(row.asDict()): row for row in _queue(spark, scanned_lake).where(F.col("run_id") == run_id).collect()}
    assert set(queued) == {(row.video_id, row.model_name, row.model_version) for row in flagged}
    for verdict in flagged:
        item = queued[(verdict.video_id, verdict.model_name, verdict.model_version)]
        assert (item.verdict, item.score, item.scan_date) == (verdict.verdict, verdict.score, scanned_lake.scan_date)
        assert item.priority == pytest.approx((4.0 if verdict.verdict == "manipulated" else 2.0) + verdict.score)
        assert (item.status == "pending") == (item.reviewed_at is None)
    lowest_manipulated = min(item.priority for item in queued.values() if item.verdict == "manipulated")
    assert all(item.priority < lowest_manipulated for item in queued.values() if item.verdict == "suspicious")


def test_only_the_serving_alias_queues(scanned_lake):
    model = scanned_lake.outcome.model
    assert serves(scanned_lake.config, model)
    assert not serves(scanned_lake.config, dataclasses.replace(model, aliases=("challenger",)))


def test_exported_uris_cannot_run_as_spreadsheet_formulas():
    assert _spreadsheet_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _spreadsheet_safe("file:///up/a.mp4") == "file:///up/a.mp4"


def test_export_then_import_round_trips_and_feeds_training(spark, scanned_lake, cli_config, tmp_path, capsys):
    exported = _export(cli_config, tmp_path / "pending.csv")
    pending = _queue(spark, scanned_lake).where(F.col("status") == "pending").collect()
    assert [_key(row) for row in exported] == [
        _key(row.asDict()) for row in sorted(pending, key=lambda row: (-row.priority, row.video_id))
    ]
    uris = {row.video_id: row.uri for row in spark.table(f"{scanned_lake.config.lake.schema_name}.videos").collect()}
    for row in exported:
        assert row["uri"] == uris[row["video_id"]]
        assert (row["decision"], row["reviewer"], row["note"]) == ("", "", "")
    assert _export(cli_config, tmp_path / "two.csv", "--limit", "2") == exported[:2]
    assert len(exported) >= 3, "the fixture should leave at least three pending items"

    fake, real, dismissed = exported[:3]
    fake.update(decision="confirmed_fake", reviewer="Zoë O'Neil", note=TRICKY_NOTE)
    real.update(decision="confirmed_real", reviewer="moderator-2", note="")
    dismissed.update(decision="dismissed", reviewer="moderator-2", note="cartoon, not a person")
    _write(tmp_path / "decided.csv", exported)
    capsys.readouterr()

    assert main(["--config", cli_config, "review", "import", str(tmp_path / "decided.csv")]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "imported 3 decisions" in said and f"{len(exported) - 3} rows without a decision skipped" in said

    after = {_key(row.asDict()): row for row in _queue(spark, scanned_lake).collect()}
    for row, status, reviewer, note in (
        (fake, "confirmed_fake", "Zoë O'Neil", TRICKY_NOTE),
        (real, "confirmed_real", "moderator-2", None),
        (dismissed, "dismissed", "moderator-2", "cartoon, not a person"),
    ):
        item = after[_key(row)]
        assert (item.status, item.reviewer, item.note) == (status, reviewer, note)
        assert item.reviewed_at is not None
    for row in exported[3:]:
        assert (after[_key(row)].status, after[_key(row)].reviewed_at) == ("pending", None)

    labels_table = REVIEW_LABELS.qualified(scanned_lake.config.lake.schema_name)
    assert spark.table(labels_table).columns == REVIEW_LABELS.column_names()
    view = {row.video_id: row.label for row in spark.table(labels_table).collect()}
    assert (view[fake["video_id"]], view[real["video_id"]]) == (1, 0)
    assert dismissed["video_id"] not in view
    training = _labelled_videos(
        spark, scanned_lake.config, scanned_lake.preprocess_version, DataSelection(labels_table=labels_table)
    )
    assert (training[fake["video_id"]], training[real["video_id"]]) == (1, 0)

    # Enqueueing the run again adds nothing and leaves the decisions as they are.
    before = sorted(tuple(row) for row in after.values())
    assert enqueue_flagged(spark, scanned_lake.config, scanned_lake.outcome.run_id) == 0
    assert sorted(tuple(row) for row in _queue(spark, scanned_lake).collect()) == before

    # A second decision on a reviewed item: the last import wins, with its own time.
    first_time = after[_key(fake)].reviewed_at
    correction = {**fake, "decision": "confirmed_real", "reviewer": "lead", "note": "re-checked"}
    _write(tmp_path / "correction.csv", [correction])
    assert main(["--config", cli_config, "review", "import", str(tmp_path / "correction.csv")]) == 0
    [item] = [row for row in _queue(spark, scanned_lake).collect() if _key(row.asDict()) == _key(fake)]
    assert (item.status, item.reviewer, item.note) == ("confirmed_real", "lead", "re-checked")
    assert item.reviewed_at > first_time
    assert spark.table(labels_table).where(F.col("video_id") == fake["video_id"]).first().label == 0


def _lines_named(err: str) -> list[int]:
    return [int(number) for number in re.findall(r"^\s*line (\d+):", err, flags=re.MULTILINE)]


def test_a_bad_file_is_rejected_whole_naming_every_bad_line(spark, scanned_lake, cli_config, tmp_path, capsys):
    keys = sorted(_key(row.asDict()) for row in _queue(spark, scanned_lake).collect())
    assert len(keys) >= 4, "the fixture should queue at least four items"

    def row(key, decision="confirmed_fake", reviewer="ann", note="", version=None):
        video_id, model_name, model_version = key
        return [video_id, model_name, version or str(model_version), "", "", "", "", "", decision, reviewer, note]

    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(HEADER)
    writer.writerow(row(keys[0], note="valid,\nbut spans two lines"))  # lines 2-3, fine on its own
    writer.writerow(row(keys[1], decision="fake"))  # 4
    writer.writerow(row(("0" * 64, keys[0][1], keys[0][2]), decision="dismissed"))  # 5
    writer.writerow(row(keys[2], decision="confirmed_real", reviewer=" "))  # 6
    writer.writerow(row(keys[0], decision="dismissed"))  # 7: duplicate of line 2
    writer.writerow(row(keys[3], decision="", note="x" * (NOTE_MAX_CHARS + 1)))  # 8: too long, and no decision
    writer.writerow(row(keys[1], version="v1"))  # 9
    writer.writerow(["too", "short"])  # 10
    bad = tmp_path / "bad.csv"
    bad.write_text(body.getvalue(), encoding="utf-8")

    before = _snapshot(spark, scanned_lake)
    capsys.readouterr()
    assert main(["--config", cli_config, "review", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert _lines_named(err) == [4, 5, 6, 7, 8, 8, 9, 10]
    for why in (
        "line 4: decision 'fake' is not one of confirmed_fake, confirmed_real, dismissed",
        f"line 5: video '{'0' * 64}'",
        "line 6: reviewer is empty",
        "line 7: duplicate of line 2",
        f"line 8: note has {NOTE_MAX_CHARS + 1} characters, at most {NOTE_MAX_CHARS}",
        "line 9: model_version 'v1' is not a whole number",
        "line 8: a note without a decision would be lost",
        "line 10: 2 fields, expected 11",
    ):
        assert why in err
    assert "nothing imported" in err
    assert _snapshot(spark, scanned_lake) == before


def test_wrong_header_and_bad_encoding_are_rejected_before_any_row(spark, scanned_lake, cli_config, tmp_path, capsys):
    before = _snapshot(spark, scanned_lake)
    video_id, model_name, model_version = sorted(_key(row.asDict()) for row in _queue(spark, scanned_lake).collect())[0]
    line = f"{video_id},{model_name},{model_version},,,,,,confirmed_fake,ann,\n"

    renamed = tmp_path / "renamed.csv"
    renamed.write_text(",".join(HEADER).replace("decision", "label") + "\n" + line, encoding="utf-8")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((",".join(HEADER) + "\n" + line + line.replace("ann,", "Zoë,")).encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path, line_number, why in (
        (renamed, 1, "header must be video_id,model_name,model_version,uri"),
        (latin1, 3, "not UTF-8 (byte 0xeb"),
        (empty, 1, "empty file"),
    ):
        capsys.readouterr()
        assert main(["--config", cli_config, "review", "import", str(path)]) == 1
        err = capsys.readouterr().err
        assert _lines_named(err) == [line_number] and why in err
    assert _snapshot(spark, scanned_lake) == before
