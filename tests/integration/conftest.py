"""Fixtures for integration tests: one real SparkSession with Delta and a Derby-backed catalog.

The session lives for the whole test run (starting Spark costs ~20 s), with its home, warehouse and
metastore in a temporary folder. Tests isolate themselves by schema: ``lake_config`` gives each test
module its own catalog schema, so tables never leak between modules. Face detection uses the YuNet
weights from ``../shared/models`` and never downloads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from deepsift.config import Config, load_config


@pytest.fixture(scope="session")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deepsift-home")


@pytest.fixture(scope="session")
def base_config(lake_home: Path, yunet_model: Path) -> Config:
    """Embedded defaults under a temporary home, on ``local[2]``, YuNet from the shared folder."""
    return load_config(
        environ={},
        overrides={
            "home": str(lake_home),
            "spark.master": "local[2]",
            "spark.shuffle_partitions": 2,
            "faces.yunet_model_path": str(yunet_model),
            "faces.allow_download": False,
        },
    )


@pytest.fixture(scope="session")
def spark(base_config: Config):
    """The test session's Spark. The repository root joins PYTHONPATH first, so that Python workers (and
    the isolated decode workers they start) can import the test-only targets in ``tests/``."""
    from deepsift.lake.session import build_spark_session

    repo_root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))

    session = build_spark_session(base_config)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lake_config(base_config: Config, request: pytest.FixtureRequest) -> Config:
    """The session's config with a catalog schema of this test module's own."""
    schema = "t_" + re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return base_config.model_copy(update={"lake": base_config.lake.model_copy(update={"schema_name": schema})})
