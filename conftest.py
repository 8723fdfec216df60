"""Names the doctests in ``libs/`` use, built for real: ``pytest`` runs every ``>>>`` example.

Most examples need nothing. The registry's (``deepsift.registry.mlflow_models``) run against an
embedded MLflow store holding three versions of a tiny untrained detector, the examples' story:
``auc`` 0.88, 0.93 and 0.91 on the evaluation set ``val-2026-11``, version 3 the ``@champion``.
Python's doctest runs a module's examples in the order of their names and they share the store, so
an example that moves an alias puts it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REGISTRY_MODULE = "deepsift.registry.mlflow_models"


@pytest.fixture(scope="session")
def example_registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The registry examples' names: ``home`` (whose embedded store holds the versions), ``registry``,
    ``network``, ``contract``, ``crops`` (two 64 x 64 RGB crops) and ``folder`` (an empty folder to download into)."""
    import numpy as np
    import torch

    from deepsift.config import load_config
    from deepsift.detect.architectures import architecture_spec, build_detector_network
    from deepsift.registry.mlflow_models import DetectorRegistry

    home: Path = tmp_path_factory.mktemp("doctest-home")
    config = load_config(environ={}, overrides={"home": str(home)})
    registry = DetectorRegistry(config.mlflow, config.home)
    torch.manual_seed(0)
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    network = build_detector_network(contract.architecture)
    for auc in (0.88, 0.93, 0.91):
        version = registry.log_and_register(
            network.state_dict(), contract, {"auc": auc}, "# example", eval_set_id="val-2026-11"
        )
    registry.set_alias("champion", version.version)
    crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    return {
        "torch": torch, "home": home, "registry": registry, "network": network, "contract": contract, "crops": crops,
        "folder": tmp_path_factory.mktemp("doctest-files"),
    }


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    """Hand the registry examples their names; other tests and doctests pay nothing."""
    if request.node.name.startswith(REGISTRY_MODULE + "."):
        doctest_namespace.update(request.getfixturevalue("example_registry"))
