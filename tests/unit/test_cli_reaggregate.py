"""`deepsift reaggregate`: its arguments, parsed without Spark (the replay itself is tested in
tests/integration/test_score_verdicts.py)."""

from __future__ import annotations

from datetime import date

import pytest

from deepsift.cli import _parser, _reaggregate


def test_reaggregate_takes_a_model_a_rule_and_an_optional_scan_date():
    args = _parser().parse_args(["reaggregate", "--model", "@champion", "--aggregation", "max", "--date", "2026-11-26"])
    assert (args.model, args.aggregation, args.date) == ("@champion", "max", date(2026, 11, 26))
    assert args.handler is _reaggregate

    args = _parser().parse_args(["reaggregate", "--model", "3", "--aggregation", "topk_mean"])
    assert (args.model, args.aggregation, args.date) == ("3", "topk_mean", None)


def test_an_unknown_rule_is_refused_while_parsing_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["reaggregate", "--model", "3", "--aggregation", "median"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown aggregation 'median'" in err and "known: confident, max" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["reaggregate", "--aggregation", "max"],
        ["reaggregate", "--model", "3"],
        ["reaggregate", "--model", "3", "--aggregation", "max", "--date", "yesterday"],
    ],
)
def test_a_missing_model_or_rule_or_a_malformed_date_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "reaggregate" in capsys.readouterr().err
