"""`deepsift mlflow-ui` before anything starts: the command line it runs over each kind of store, and its refusals.

The server itself runs in tests/integration/test_mlflow_ui.py.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from deepsift.cli import main
from deepsift.config import load_config
from deepsift.registry.mlflow_ui import ui_command, ui_url


def test_the_embedded_store_is_served_with_the_registrys_artifact_location(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"home": str(tmp_path / "home")})
    root = tmp_path / "home" / "mlflow"
    assert ui_command(config, 5123) == [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--registry-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--no-serve-artifacts",
        "--host", "127.0.0.1",
        "--port", "5123",
        "--workers", "1",
        "--default-artifact-root", (root / "artifacts").as_uri(),
    ]
    assert root.is_dir()  # SQLite creates the database file, not its folder
    assert ui_url(config, 5123) == "http://127.0.0.1:5123/#/models/deepsift-detector"


def test_a_configured_database_store_keeps_its_own_artifact_locations(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={
        "home": str(tmp_path / "home"),
        "mlflow.tracking_uri": "postgresql://mlflow@db/mlflow",
        "mlflow.registered_model": "faces-v2",
    })
    assert ui_command(config, 5000)[4:8] == [
        "--backend-store-uri", "postgresql://mlflow@db/mlflow", "--registry-store-uri", "postgresql://mlflow@db/mlflow",
    ]
    assert "--default-artifact-root" not in ui_command(config, 5000)
    assert not (tmp_path / "home").exists()
    assert ui_url(config, 5000) == "http://127.0.0.1:5000/#/models/faces-v2"


def test_a_tracking_server_is_refused_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    monkeypatch.setenv("DEEPSIFT_MLFLOW__TRACKING_URI", "http://mlflow:5000")
    assert main(["mlflow-ui", "--port", "5000"]) == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        "configuration error: config key mlflow.tracking_uri is http://mlflow:5000, "
        "a tracking server that serves this UI itself: open it there"
    )


def test_a_taken_port_is_refused_before_mlflow_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["mlflow-ui", "--port", str(port)]) == 1
    error = " ".join(capsys.readouterr().err.split())
    assert error.startswith(f"error: port {port} on 127.0.0.1 is in use (")
    assert error.endswith("); choose another with --port")
