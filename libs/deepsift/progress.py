"""A terminal progress bar for Spark work, fed by Spark's status tracker (tasks done / tasks known)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def spark_progress(spark: SparkSession, description: str, console: Console | None = None) -> Iterator[None]:
    """Show the tasks of the jobs started inside the block, polled twice a second, on ``console``."""
    tracker = spark.sparkContext.statusTracker()
    group = f"deepsift-{description}-{id(object())}"
    spark.sparkContext.setJobGroup(group, description)
    stop = threading.Event()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"), TimeElapsedColumn(),
        console=console or Console(stderr=True), transient=False,
    )
    bar = progress.add_task(description, total=None)

    def refresh() -> None:
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job else []:
                stage = tracker.getStageInfo(stage_id)
                if stage:
                    done += stage.numCompletedTasks
                    total += stage.numTasks
        progress.update(bar, completed=done, total=total or None)

    def poll() -> None:
        while not stop.wait(0.5):
            refresh()

    poller = threading.Thread(target=poll, daemon=True)
    with progress:
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            refresh()
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]  # None unsets it
