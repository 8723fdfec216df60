"""Reading one registered model's versions: aliases and numbers to versions, their files and contracts.

A registered version's files never change, so its preprocessing contract is downloaded once per
process and kept, per (store, model name, version number): resolving an alias and listing versions
then cost registry calls only. :meth:`RegisteredVersions.read_contract` still reads the stored file.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.registry.errors import ContractMissingError, ModelArtifactError, ModelNotFoundError, first_line
from deepsift.registry.packaging import PYFUNC_ARTIFACTS_DIR
from deepsift.registry.store import MlflowStore, is_missing
from deepsift.registry.version_files import read_contract

ARCHITECTURE_TAG = "architecture"
EVAL_SET_TAG = "eval_set_id"

_CONTRACTS: dict[tuple[MlflowStore, str, int], PreprocessContract] = {}
"""Contracts already read, by (store, model name, version number); see the module docstring."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered detector version, with what the scan and the reports need to know about it."""

    name: str
    version: int
    run_id: str | None
    model_uri: str
    """``models:/<name>/<version>``: exact, unlike an alias."""
    aliases: tuple[str, ...]
    contract: PreprocessContract
    metrics: dict[str, float]
    eval_set_id: str | None


class RegisteredVersions:
    """The versions registered under ``name`` in ``store``, read through ``client`` (bound to that store)."""

    def __init__(self, client: MlflowClient, store: MlflowStore, name: str) -> None:
        self.client = client
        self.store = store
        self.name = name

    def find(self, reference: str) -> ModelVersion:
        """The version behind an alias (without ``@``) or a version number, or :class:`ModelNotFoundError`."""
        if reference.isdigit():
            try:
                return self.client.get_model_version(self.name, reference)
            except MlflowException as error:
                if not is_missing(error):
                    raise
                raise ModelNotFoundError(
                    f"{self.name} has no version {reference}; versions: {self.numbers() or 'none'}"
                ) from None
        # Looked up first: MLflow reports a missing alias as an invalid parameter, not as missing.
        aliases = self.aliases()
        if reference not in aliases:
            listed = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
            raise ModelNotFoundError(f"{self.name} has no alias @{reference}; aliases: {listed}")
        return self.client.get_model_version(self.name, aliases[reference])

    def info(self, version: ModelVersion) -> ModelVersionInfo:
        """What the scan and the reports need of ``version``: its run's metrics, aliases and contract."""
        number = int(version.version)
        metrics = dict(self.client.get_run(version.run_id).data.metrics) if version.run_id else {}
        return ModelVersionInfo(
            name=self.name,
            version=number,
            run_id=version.run_id,
            model_uri=f"models:/{self.name}/{number}",
            aliases=tuple(sorted(version.aliases)),
            contract=self.contract(number),
            metrics=metrics,
            eval_set_id=version.tags.get(EVAL_SET_TAG),
        )

    def contract(self, version: int) -> PreprocessContract:
        """An exact version's contract, read from the store the first time this process asks for it."""
        key = (self.store, self.name, version)
        if key not in _CONTRACTS:
            _CONTRACTS[key] = self.read_contract(version)
        return _CONTRACTS[key]

    def read_contract(self, version: int) -> PreprocessContract:
        """An exact version's contract, read from its stored ``contract.json`` now."""
        with tempfile.TemporaryDirectory() as scratch:
            path = self.download_contract(version, Path(scratch))
            return read_contract(path, f"{self.name} version {version}")

    def download_contract(self, version: int, directory: Path) -> Path:
        """Copy an exact version's ``contract.json`` into ``directory`` (:class:`ContractMissingError` if absent)."""
        try:
            return self.download(version, CONTRACT_FILE, directory)
        except ModelArtifactError as error:
            raise ContractMissingError(str(error)) from None

    def download(self, version: int, filename: str, directory: Path) -> Path:
        """Copy one of an exact version's artifact files into ``directory``."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"expected an exact version number, got {version!r}; resolve aliases with resolve()")
        try:
            root = self.client.get_model_version_download_uri(self.name, str(version))
        except MlflowException as error:
            if not is_missing(error):
                raise
            raise ModelNotFoundError(
                f"{self.name} has no version {version}; versions: {self.numbers() or 'none'}"
            ) from None
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{root.rstrip('/')}/{PYFUNC_ARTIFACTS_DIR}/{filename}",
                dst_path=str(directory),
                tracking_uri=self.store.tracking_uri,
                registry_uri=self.store.registry_uri,
            )
        except (MlflowException, OSError) as error:
            raise ModelArtifactError(
                f"{self.name} version {version}: cannot fetch {filename} ({first_line(error)})"
            ) from None
        return Path(local)

    def aliases(self) -> dict[str, str]:
        """Every alias of the registered model and its version number (empty if it is not registered)."""
        try:
            return dict(self.client.get_registered_model(self.name).aliases)
        except MlflowException as error:
            if not is_missing(error):
                raise
            return {}

    def numbers(self) -> str:
        """The registered version numbers in order, for messages: ``"1, 2, 3"`` (empty if none)."""
        versions = self.client.search_model_versions(f"name = '{self.name}'")
        return ", ".join(str(n) for n in sorted(int(v.version) for v in versions))
