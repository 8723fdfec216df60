"""
### deepsift training

Weekly (Saturdays 03:00 UTC) and on demand: trains a detector on the crops the lakehouse holds plus
a corpus of real faces (the starter corpus; the `corpus` param, else the Airflow Variable
`deepsift_training_corpus`) and registers it as the **`@challenger`** version (`jobs/train.py` through spark-submit on the
`spark_default` connection's master). Training evaluates the new version on held-out videos and
records those metrics with it; `@champion` does not move here (see `deepsift_promote`).

Params choose the architecture, epochs and data (`since` / `until` ingest dates, a `labels_table`
of labelled videos). A retry after a failure during training starts over; one after the version
was registered registers another version, which then holds `@challenger`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag

from deepsift.orchestration.defaults import dag_options
from deepsift.orchestration.spark_jobs import spark_job

JOBS_DIR = Path(__file__).parent.parent / "jobs"


def prepare_training(params: dict[str, Any]) -> list[str]:
    """spark-submit arguments, conf and environment for ``jobs/train.py``, from the config at run time."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException

    from deepsift.orchestration.submit import train_args

    corpus = params["corpus"] or Variable.get("deepsift_training_corpus", default=None)
    if not corpus:
        raise AirflowFailException(
            "no corpus of real faces: set the Airflow Variable deepsift_training_corpus or the corpus param"
        )
    return train_args(
        params["architecture"], params["epochs"], params["input_size"], params["max_steps"],
        params["since"], params["until"], params["labels_table"], corpus,
    )


@dag(
    schedule=CronTriggerTimetable("0 3 * * 6", timezone="UTC"),
    **dag_options(
        "deepsift_train", timedelta(hours=12), "training", __doc__,
        params={
            "architecture": Param("efficientnet_lite0", type="string"),  # = DEFAULT_ARCHITECTURE, not imported: no torch
            "epochs": Param(8, type="integer", minimum=1, description="the most epochs; early stopping may end sooner"),
            "corpus": Param(None, type=["null", "string"], description="folder of real faces with a MANIFEST.csv"),
            "input_size": Param(None, type=["null", "integer"], minimum=32),
            "max_steps": Param(None, type=["null", "integer"], minimum=1),
            "since": Param(None, type=["null", "string"], description="only videos ingested on or after (YYYY-MM-DD)"),
            "until": Param(None, type=["null", "string"], description="only videos ingested on or before (YYYY-MM-DD)"),
            "labels_table": Param(None, type=["null", "string"], description="table with video_id and label"),
        },
        retries=1,
    )
)
def deepsift_train() -> None:
    spark_job(
        JOBS_DIR,
        "train",
        prepare_training,
        doc_md="`jobs/train.py` through spark-submit: extract crops, train, evaluate on held-out videos, "
        "register the version as `@challenger`.",
        execution_timeout=timedelta(hours=10),
    )()


deepsift_train()
