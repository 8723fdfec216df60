"""Progress told in the library's own steps (ingest, extract, score, verdicts, ...), shown as a bar.

Stage functions mark themselves with :func:`step` (as a decorator or a ``with`` block), and a function
that runs several announces them first with :func:`plan`; both do nothing unless a display listens
(:func:`show_steps`, which the command line opens around a library call). Steps are what a user
recognises, and the bar ends at 100% when the work does; Spark's task counts, which the bar once
showed, grow while Spark plans further stages and so stopped short of the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class _Display:
    """The steps of one :func:`show_steps` block: planned, running, done."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task
        self.planned: list[str] = []
        self.done: list[str] = []
        self.depth = 0

    def plan(self, steps: tuple[str, ...]) -> None:
        self.planned = [*self.done, *steps]
        self.progress.update(self.task, total=len(self.planned))

    def start(self, name: str) -> None:
        self.depth += 1
        if self.depth > 1:  # a step inside a step is part of it
            return
        if len(self.planned) <= len(self.done):  # unannounced: the total grows with it
            self.planned.append(name)
        self.progress.update(self.task, total=len(self.planned), step=name)

    def finish(self, succeeded: bool) -> None:
        self.depth -= 1
        if self.depth == 0 and succeeded:
            self.done.append(self.planned[len(self.done)])
            finished = len(self.done) == len(self.planned)
            self.progress.update(self.task, completed=len(self.done), step="done" if finished else "")


_display: ContextVar[_Display | None] = ContextVar("deepsift_progress_display", default=None)


def plan(*steps: str) -> None:
    """Announce the steps the caller is about to take, in order, so the bar knows its length."""
    display = _display.get()
    if display is not None and display.depth == 0:
        display.plan(steps)


@contextmanager
def step(name: str) -> Iterator[None]:
    """One step of the work: shown as running, then counted as done if it ends without an error."""
    display = _display.get()
    if display is None:
        yield
        return
    display.start(name)
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        display.finish(succeeded)


@contextmanager
def show_steps(description: str, console: Console | None = None) -> Iterator[None]:
    """Show the steps taken inside the block as a bar on ``console`` (standard error by default)."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
        TextColumn("{task.fields[step]}"), TimeElapsedColumn(),
        console=console or Console(stderr=True), transient=False,
    )
    display = _Display(progress, progress.add_task(description, total=None, step=""))
    token = _display.set(display)
    try:
        with progress:
            yield
    finally:
        _display.reset(token)
