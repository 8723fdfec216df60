"""Which MLflow store holds the detector versions: tracking and registry URIs, and clients bound to them.

With no ``mlflow.tracking_uri`` configured, the store is the embedded one: SQLite at
``home/mlflow/mlflow.db`` with artifacts beside it. Every client made here is bound to its store's
URIs, so nothing in the registry changes MLflow's process-wide tracking URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from deepsift.config import MlflowConfig


@dataclass(frozen=True)
class MlflowStore:
    """The resolved MLflow locations; ``artifact_location`` None lets the tracking server choose."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None

    @classmethod
    def from_config(cls, config: MlflowConfig, home: Path) -> MlflowStore:
        """The configured store, or the embedded one under ``home`` when no tracking URI is set.

        >>> MlflowStore.from_config(MlflowConfig(tracking_uri="http://mlflow:5000"), Path(".")).registry_uri
        'http://mlflow:5000'
        """
        if config.tracking_uri is None:
            embedded = embedded_store(home)
            return cls(embedded.tracking_uri, config.registry_uri or embedded.registry_uri, embedded.artifact_location)
        return cls(config.tracking_uri, config.registry_uri or config.tracking_uri, None)

    @classmethod
    def open(cls, config: MlflowConfig, home: Path) -> MlflowStore:
        """:meth:`from_config`, with the embedded store's folder created when that store is the one used."""
        if config.tracking_uri is None:
            (Path(home).resolve() / "mlflow").mkdir(parents=True, exist_ok=True)
        return cls.from_config(config, home)

    def client(self) -> MlflowClient:
        """An MLflow client bound to this store's tracking and registry URIs."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)


def embedded_store(home: Path) -> MlflowStore:
    """The store used when none is configured: SQLite at ``home/mlflow/mlflow.db``, files beside it.

    >>> embedded_store(Path(".deepsift")).tracking_uri.endswith("/.deepsift/mlflow/mlflow.db")
    True
    """
    root = Path(home).resolve() / "mlflow"
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowStore(tracking_uri, tracking_uri, (root / "artifacts").as_uri())


def is_missing(error: MlflowException) -> bool:
    """Whether MLflow refused because the model, version or run does not exist."""
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def already_exists(error: MlflowException) -> bool:
    """Whether MLflow refused to create something because it exists (perhaps made by another process)."""
    return error.error_code == ErrorCode.Name(RESOURCE_ALREADY_EXISTS)
