"""What a command prints besides its results: a progress bar in the library's own steps that ends
complete, and each Python warning once."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from rich.console import Console

from deepsift.logs import OnceFilter, not_an_interrupt
from deepsift.progress import plan, show_steps, step


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, force_terminal=False), out


@step("extract")
def _extract() -> None:
    with step("decode"):  # a step inside a step is part of it
        pass


def _pipeline(fail_at: str | None = None) -> None:
    plan("ingest", "extract", "record")
    for name in ("ingest", "extract", "record"):
        if name == "extract":
            _extract()
            continue
        with step(name):
            if name == fail_at:
                raise RuntimeError(name)


def test_the_bar_counts_planned_steps_and_ends_complete():
    console, out = _console()
    with show_steps("scan", console):
        _pipeline()
    assert out.getvalue().split() == ["scan", "━" * 40, "3/3", "steps", "done", "0:00:00"]


def test_a_failed_step_leaves_the_bar_where_it_stopped():
    console, out = _console()
    with pytest.raises(RuntimeError, match="record"), show_steps("scan", console):
        _pipeline(fail_at="record")
    assert out.getvalue().split()[2:4] == ["2/3", "steps"]


def test_steps_nobody_announced_grow_the_total():
    console, out = _console()
    with show_steps("ingest", console):
        with step("ingest"):
            pass
        _extract()
    assert out.getvalue().split()[2:5] == ["2/2", "steps", "done"]


def test_steps_without_a_display_do_nothing_but_run():
    assert _extract() is None


def test_a_repeated_warning_is_said_once():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(OnceFilter())
    logger = logging.getLogger("deepsift.test_console_output")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(6):  # as six Spark tasks or six tables would
            logger.warning("YuNet weights unavailable: falling back to %s", "Haar")
        logger.warning("another fact")
        logger.error("YuNet weights unavailable: falling back to %s", "Haar")  # another level: said too
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert out.getvalue().splitlines() == [
        "YuNet weights unavailable: falling back to Haar", "another fact", "YuNet weights unavailable: falling back to Haar",
    ]


def test_records_about_a_ctrl_c_are_not_repeated_but_other_errors_are():
    def record(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException:
            return logging.makeLogRecord({"msg": "while sending command", "exc_info": sys.exc_info()})

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise BrokenPipeError  # noqa: B904 - py4j's cleanup failing after the interrupt, chained implicitly
    except BrokenPipeError as during_interrupt:
        chained = during_interrupt
    assert not not_an_interrupt(record(KeyboardInterrupt()))
    assert not not_an_interrupt(record(chained))
    assert not_an_interrupt(record(BrokenPipeError()))
    assert not_an_interrupt(logging.makeLogRecord({"msg": "no exception"}))
