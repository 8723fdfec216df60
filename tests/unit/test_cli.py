"""The command line without Spark: configuration errors, and the model commands on a real MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from deepsift.cli import main
from deepsift.config import load_config
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.registry.mlflow_models import DetectorRegistry


def test_a_bad_config_value_exits_2_naming_key_and_choices(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPSIFT_FACES__DETECTOR", "mtcnn")
    assert main(["models", "list"]) == 2
    out = capsys.readouterr().err
    assert "faces.detector" in out and "'yunet' or 'haar'" in out


def test_models_commands_list_show_and_promote(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    config = load_config()
    registry = DetectorRegistry(config.mlflow, config.home)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    torch.manual_seed(0)
    state = build_detector_network(contract.architecture).state_dict()
    first = registry.log_and_register(state, contract, {"auc": 0.7}, "# first", eval_set_id="set-a")
    second = registry.log_and_register(state, contract, {"auc": 0.6}, "# second", eval_set_id="set-a")
    registry.set_alias("champion", first.version)
    registry.set_alias("challenger", second.version)

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "champion" in listing and "challenger" in listing and "0.7000" in listing

    assert main(["models", "show", "@champion"]) == 0
    assert '"architecture": "mobilenetv3_small_050"' in capsys.readouterr().out

    assert main(["models", "promote"]) == 3  # the challenger is worse: refused, champion stays
    assert "refused" in capsys.readouterr().out
    assert registry.resolve("@champion").version == first.version

    assert main(["models", "show", "@nope"]) == 1
    assert "no alias @nope" in capsys.readouterr().err


def test_import_refuses_a_mismatched_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    checkpoint = tmp_path / "other.pt"
    torch.save(build_detector_network("mobilenetv3_small_050").state_dict(), checkpoint)
    assert main(["models", "import", str(checkpoint), "--architecture", "efficientnet_b0"]) == 1
    assert "does not fit efficientnet_b0" in capsys.readouterr().err


def test_maintain_refuses_a_retention_delta_would_refuse_before_spark_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPSIFT_HOME", str(tmp_path))
    assert main(["maintain", "--retention-hours", "24"]) == 2
    assert "retention of 24 h" in capsys.readouterr().err
    assert not (tmp_path / "metastore").exists()


def test_a_first_command_on_a_new_mlflow_store_says_nothing_routine(tmp_path):
    """MLflow logs at INFO when it creates its database, unless told otherwise before it is imported."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("DEEPSIFT_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "deepsift.cli", "models", "list"],
        env=environ | {"DEEPSIFT_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "mlflow").is_dir()  # the store was created by this command
    assert " INFO " not in done.stderr, done.stderr
