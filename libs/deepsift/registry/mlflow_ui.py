"""MLflow's own web UI over the store the config points at, on 127.0.0.1 only.

ML engineers browse runs, metrics, the registered detector and its aliases there. It is
``mlflow server`` run as a child process (:mod:`deepsift.local_server`) on the same tracking and
registry URIs that :class:`~deepsift.registry.mlflow_models.DetectorRegistry` uses, with the
registry's artifact location as the default for experiments created from the UI. The embedded
store's artifacts are plain ``file://`` paths that the server reads itself, so artifact proxying
(``--serve-artifacts``, whose default destination is ``./mlartifacts`` in the working directory) is
off. One uvicorn worker serves one person browsing; MLflow's background job runner, which only
GenAI features use, is off too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from deepsift.config import Config, ConfigError
from deepsift.local_server import BIND_HOST, check_port_free, run_in_foreground
from deepsift.registry.store import MlflowStore

_REMOTE_SCHEMES = ("http://", "https://", "databricks")


def ui_command(config: Config, port: int) -> list[str]:
    """The ``mlflow server`` command line over the configured store (the embedded one's folder is created).

    A tracking server (``mlflow.tracking_uri`` over HTTP) already serves this UI: that is a
    :class:`~deepsift.config.ConfigError` naming the key and the URL to open instead.
    """
    store = MlflowStore.open(config.mlflow, config.home)
    if store.tracking_uri.startswith(_REMOTE_SCHEMES):
        raise ConfigError(
            f"config key mlflow.tracking_uri is {store.tracking_uri}, a tracking server that serves "
            "this UI itself: open it there"
        )
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store.tracking_uri,
        "--registry-store-uri", store.registry_uri,
        "--no-serve-artifacts",
        "--host", BIND_HOST,
        "--port", str(port),
        "--workers", "1",
    ]
    if store.artifact_location is not None:
        command += ["--default-artifact-root", store.artifact_location]
    return command


def ui_url(config: Config, port: int) -> str:
    """The page of the registered detector, which lists its versions and their aliases."""
    return f"http://{BIND_HOST}:{port}/#/models/{config.mlflow.registered_model}"


def serve_ui(config: Config, port: int, on_ready: Callable[[str], None]) -> int:
    """Run MLflow's UI in the foreground until Ctrl-C (or SIGTERM); its exit status, 0 when stopped.

    ``on_ready`` gets :func:`ui_url` once the port accepts connections.
    """
    command = ui_command(config, port)
    check_port_free(port)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return run_in_foreground(command, port, lambda: on_ready(ui_url(config, port)), what="the MLflow server", env=env)
