"""Detector versions in MLflow: log, register, alias, resolve, promote, import, load.

A version is one MLflow *logged model* registered under ``MlflowConfig.registered_model``, made of:

* ``artifacts/state_dict.pt``: the weights, a plain ``{name: tensor}`` dict, read back with
  ``torch.load(weights_only=True)`` so loading never unpickles arbitrary objects;
* ``artifacts/contract.json``: the :class:`PreprocessContract` (architecture name, input size,
  normalisation, thresholds, ...);
* ``artifacts/model_card.md``: the model card, also the version's description;
* the pyfunc flavour written as *models-from-code* from ``models/detector_pyfunc.py``, so that
  ``mlflow.pyfunc.load_model("models:/deepsift-detector@champion")`` works without pickles;
* metrics on the run that logged it, and tags ``architecture`` and ``eval_set_id`` on the version.

The scan resolves an alias once on the driver (:meth:`DetectorRegistry.resolve`) and executors load
that exact version's files (:meth:`DetectorRegistry.load_scorer`) straight into a
:class:`FaceScorer`, the same one the pyfunc wraps. Every client is bound to this registry's store:
nothing here changes MLflow's process-wide tracking URI or active run.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, Metric, Param
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.types import Schema, TensorSpec

import deepsift
from deepsift.config import CpuEngine, MlflowConfig
from deepsift.detect.contract import CONTRACT_FILE, PreprocessContract
from deepsift.registry.errors import (
    CheckpointError,
    CheckpointMismatchError,
    ContractMissingError,
    ModelArtifactError,
    ModelCodeNotFoundError,
    ModelNotFoundError,
    RegistryError,
)

if TYPE_CHECKING:  # torch, timm and the network code load only where a network is built: not on a scan's driver
    import torch
    from torch import nn

    from deepsift.detect.scoring import FaceScorer

STATE_DICT_FILE = "state_dict.pt"
MODEL_CARD_FILE = "model_card.md"
PYFUNC_ARTIFACTS_DIR = "artifacts"
"""Where the pyfunc flavour puts the files given as ``artifacts`` inside the model directory."""
ARCHITECTURE_TAG = "architecture"
EVAL_SET_TAG = "eval_set_id"
PROMOTION_TAG = "deepsift.promotion"
FORCED_PROMOTION_TAG = "deepsift.promoted_by_force"
CHECKPOINT_WRAPPER_KEYS = ("state_dict", "model")
"""Training scripts often save ``{"state_dict": ...}`` or ``{"model": ...}`` instead of the bare dict."""


def pyfunc_code_path() -> Path:
    """The models-from-code file, ``models/detector_pyfunc.py`` at the repository root.

    The design keeps model code in top-level ``models/``, outside the ``deepsift`` package, so it is
    found relative to the source tree: ``libs/deepsift/__init__.py`` -> repository root. That holds
    for the editable install and for jobs run from a checkout or an image that copies the repository;
    a wheel-only install lacks the file and gets :class:`ModelCodeNotFoundError`. Only logging needs
    it: MLflow copies the file into every logged model, so loading never does.
    """
    path = Path(deepsift.__file__).resolve().parents[2] / "models" / "detector_pyfunc.py"
    if not path.is_file():
        raise ModelCodeNotFoundError(
            f"model code {path} not found; log models from a deepsift checkout (editable install)"
        )
    return path


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


def embedded_store(home: Path) -> MlflowStore:
    """The store used when none is configured: SQLite at ``home/mlflow/mlflow.db``, files beside it.

    >>> embedded_store(Path(".deepsift")).tracking_uri.endswith("/.deepsift/mlflow/mlflow.db")
    True
    """
    root = Path(home).resolve() / "mlflow"
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowStore(tracking_uri, tracking_uri, (root / "artifacts").as_uri())


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


@dataclass(frozen=True)
class PromotionDecision:
    """What :meth:`DetectorRegistry.promote` did and why; ``reason`` quotes both metric values."""

    promoted: bool
    forced: bool
    reason: str
    metric: str
    challenger_version: int
    champion_version: int | None
    """The version that held the champion alias before the decision."""
    challenger_value: float | None
    champion_value: float | None


class DetectorRegistry:
    """The detector versions registered under one name, in one MLflow store.

    >>> from deepsift.config import load_config
    >>> config = load_config(overrides={"home": str(home)})
    >>> registry = DetectorRegistry(config.mlflow, config.home)
    >>> registry.resolve("@champion").model_uri
    'models:/deepsift-detector/3'
    """

    def __init__(self, config: MlflowConfig, home: Path, experiment_name: str | None = None) -> None:
        self.store = MlflowStore.open(config, home)
        self.name = config.registered_model
        self.experiment_name = experiment_name or config.registered_model
        self.client = MlflowClient(tracking_uri=self.store.tracking_uri, registry_uri=self.store.registry_uri)

    def log_and_register(
        self,
        network_state_dict: Mapping[str, torch.Tensor],
        contract: PreprocessContract,
        metrics: Mapping[str, float],
        model_card: str,
        *,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        eval_set_id: str | None = None,
    ) -> ModelVersionInfo:
        """Log weights, contract, metrics and model card as a new version; return it.

        The state dict must fit ``contract.architecture`` (else :class:`CheckpointMismatchError`).
        ``eval_set_id`` names the evaluation set the metrics were measured on; promotion compares
        only versions measured on the same one.

        >>> info = registry.log_and_register(network.state_dict(), contract, {"auc": 0.91},
        ...                                  "# reference detector", eval_set_id="val-2026-11")
        >>> info.model_uri == f"models:/deepsift-detector/{info.version}"
        True
        """
        code_path = pyfunc_code_path()
        state_dict = {key: tensor.detach().cpu().clone() for key, tensor in network_state_dict.items()}
        load_into_network(contract.architecture, state_dict)
        experiment_id = self._experiment_id()
        run_tags = {ARCHITECTURE_TAG: contract.architecture} | ({EVAL_SET_TAG: eval_set_id} if eval_set_id else {})
        run = self.client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        run_id = run.info.run_id
        try:
            logged = self.client.create_logged_model(
                experiment_id, name="detector", source_run_id=run_id, model_type="deepsift-detector"
            )
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0, model_id=logged.model_id) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in {**(params or {}), **_contract_params(contract)}.items()],
            )
            with tempfile.TemporaryDirectory() as scratch:
                model_dir = _save_pyfunc(
                    Path(scratch), code_path, state_dict, contract, model_card, run_id, logged.model_id
                )
                self.client.log_model_artifacts(logged.model_id, str(model_dir))
            self.client.finalize_logged_model(logged.model_id, "READY")
            self._ensure_registered_model()
            version_tags = {ARCHITECTURE_TAG: contract.architecture, "input_size": str(contract.input_size)}
            if eval_set_id:
                version_tags[EVAL_SET_TAG] = eval_set_id
            created = self.client.create_model_version(
                self.name,
                # The storage location, not "models:/<model_id>": MLflow's SQL registry resolves
                # the latter with the process-wide tracking URI, not this client's.
                source=logged.artifact_location,
                run_id=run_id,
                model_id=logged.model_id,
                tags=version_tags,
                description=model_card,
            )
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return self.resolve(created.version)

    def set_alias(self, alias: str, version: int | str) -> ModelVersionInfo:
        """Point ``alias`` (with or without ``@``) at an existing version; return that version.

        >>> registry.set_alias("@challenger", 1).aliases
        ('challenger',)
        """
        info = self.resolve(str(version))
        self.client.set_registered_model_alias(self.name, alias.removeprefix("@"), str(info.version))
        return self.resolve(str(info.version))

    def resolve(self, alias_or_version: str | int) -> ModelVersionInfo:
        """The exact version behind ``"@champion"``, ``"champion"``, ``"3"`` or ``3``.

        Raises :class:`ModelNotFoundError` naming what is missing and listing what exists, and
        :class:`ContractMissingError` for a version without a readable contract.

        >>> registry.resolve("@champion").version
        3
        >>> registry.resolve("2").model_uri
        'models:/deepsift-detector/2'
        """
        reference = str(alias_or_version).strip().removeprefix("@")
        if reference.isdigit():
            try:
                version = self.client.get_model_version(self.name, reference)
            except MlflowException as error:
                if not _is_missing(error):
                    raise
                raise ModelNotFoundError(
                    f"{self.name} has no version {reference}; versions: {self._version_numbers() or 'none'}"
                ) from None
        else:
            # Looked up first: MLflow reports a missing alias as an invalid parameter, not as missing.
            aliases = self._aliases()
            if reference not in aliases:
                listed = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
                raise ModelNotFoundError(f"{self.name} has no alias @{reference}; aliases: {listed}")
            version = self.client.get_model_version(self.name, aliases[reference])
        return self._info(version)

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version of the registered model, oldest first (empty if none was registered).

        >>> [v.version for v in registry.list_versions()][:3]
        [1, 2, 3]
        """
        versions = self.client.search_model_versions(f"name = '{self.name}'")
        # search results carry no aliases in every MLflow store, so each version is read whole
        return [self._info(self.client.get_model_version(self.name, v.version)) for v in sorted(versions, key=lambda v: int(v.version))]

    def load_contract(self, version: int) -> PreprocessContract:
        """The preprocessing contract of an exact version (:class:`ContractMissingError` if absent).

        >>> registry.load_contract(3).input_size
        64
        """
        with tempfile.TemporaryDirectory() as scratch:
            path = self._download_contract(version, Path(scratch))
            return read_contract(path, f"{self.name} version {version}")

    def load_scorer(
        self, version: int, device: str | torch.device | None = None, cpu_engine: CpuEngine = "torch"
    ) -> FaceScorer:
        """A :class:`FaceScorer` built from an exact version's weights and contract, scoring on ``device``
        with ``cpu_engine`` when that is a CPU.

        Takes a version number, not an alias, so that every executor loads what the driver resolved.
        A missing, corrupt or mismatched file raises :class:`ModelArtifactError` naming the version
        and file.

        >>> scorer = registry.load_scorer(registry.resolve("@champion").version)
        >>> scores = scorer.score(crops)  # two 64 x 64 RGB crops
        >>> scores.shape, scores.dtype, bool(((scores > 0) & (scores < 1)).all())
        ((2,), dtype('float32'), True)
        """
        with tempfile.TemporaryDirectory() as scratch:
            contract_path = self._download_contract(version, Path(scratch))
            state_dict_path = self._download(version, STATE_DICT_FILE, Path(scratch))
            return scorer_from_files(
                state_dict_path, contract_path, f"{self.name} version {version}", device, cpu_engine
            )

    def record_evaluation(
        self, version: int, metrics: Mapping[str, float], eval_set_id: str, plots: Sequence[Path] = ()
    ) -> None:
        """Make ``metrics`` (measured on ``eval_set_id``) the version's current metrics; attach plots.

        Metrics go to the version's run at a new step, so they read as its latest values; the run and
        the version are tagged with the evaluation set, which :meth:`promote` compares.

        >>> registry.record_evaluation(2, {"auc": 0.95}, "val-2026-11")
        >>> registry.resolve(2).metrics["auc"]
        0.95
        """
        info = self.resolve(version)
        if info.run_id is None:
            raise RegistryError(f"{info.model_uri} has no MLflow run to record its evaluation in")
        step = int(time.time())
        for name, value in metrics.items():
            self.client.log_metric(info.run_id, name, float(value), step=step)
        self.client.set_tag(info.run_id, EVAL_SET_TAG, eval_set_id)
        self.client.set_model_version_tag(self.name, str(info.version), EVAL_SET_TAG, eval_set_id)
        for plot in plots:
            self.client.log_artifact(info.run_id, str(plot), artifact_path="evaluation")

    def promote(
        self,
        challenger: str = "challenger",
        champion: str = "champion",
        metric: str = "auc",
        *,
        higher_is_better: bool = True,
        force: bool = False,
    ) -> PromotionDecision:
        """Move the champion alias to the challenger's version if it is at least as good.

        Both versions must carry ``metric`` measured on the same ``eval_set_id``; otherwise, or when
        the challenger is worse, nothing moves and the decision says why (with both numbers).
        ``force=True`` promotes anyway and tags the version ``deepsift.promoted_by_force``. With no
        champion yet, the challenger becomes champion.

        >>> registry.set_alias("challenger", 2).version
        2
        >>> registry.promote().reason
        'challenger v2 auc 0.9300 >= champion v3 auc 0.9100 on eval set val-2026-11'
        >>> registry.set_alias("champion", 3).version  # as it was, for the other examples
        3
        """
        new = self.resolve(challenger)
        champion = champion.removeprefix("@")
        try:
            old: ModelVersionInfo | None = self.resolve(champion)
        except ModelNotFoundError:
            old = None
        promoted, forced = True, False
        if old is None:
            reason = f"no @{champion} yet: v{new.version} becomes @{champion}"
        elif old.version == new.version:
            promoted, reason = False, f"v{new.version} already holds @{champion}"
        else:
            acceptable, comparison = _compare(new, old, metric, higher_is_better)
            if acceptable:
                reason = comparison
            elif force:
                forced, reason = True, f"forced although {comparison}"
            else:
                promoted, reason = False, f"refused: {comparison}"
        if promoted:
            self.client.set_registered_model_alias(self.name, champion, str(new.version))
            self.client.set_model_version_tag(self.name, str(new.version), PROMOTION_TAG, reason)
            if forced:
                self.client.set_model_version_tag(self.name, str(new.version), FORCED_PROMOTION_TAG, "true")
        return PromotionDecision(
            promoted=promoted,
            forced=forced,
            reason=reason,
            metric=metric,
            challenger_version=new.version,
            champion_version=old.version if old else None,
            challenger_value=new.metrics.get(metric),
            champion_value=old.metrics.get(metric) if old else None,
        )

    def import_checkpoint(
        self,
        path: Path,
        architecture: str,
        contract: PreprocessContract,
        model_card: str,
        *,
        metrics: Mapping[str, float] | None = None,
        eval_set_id: str | None = None,
    ) -> ModelVersionInfo:
        """Register a third-party checkpoint file (e.g. an SBI EfficientNet-B4) as a new version.

        The file is read with ``weights_only=True``; a raw state dict or one under a ``state_dict``
        or ``model`` key is accepted, and a ``module.`` prefix (DataParallel) is stripped. A checkpoint
        that does not fit ``architecture`` raises :class:`CheckpointMismatchError` naming the key.

        >>> torch.save({"state_dict": network.state_dict()}, checkpoint := home / "small.pt")
        >>> info = registry.import_checkpoint(checkpoint, "mobilenetv3_small_050", contract, "# imported")
        >>> info.aliases, info.metrics
        ((), {})
        """
        if contract.architecture != architecture:
            raise ValueError(f"contract is for {contract.architecture!r}, not {architecture!r}")
        path = Path(path)
        return self.log_and_register(
            read_checkpoint(path),
            contract,
            metrics or {},
            model_card,
            run_name=f"import {path.name}",
            params={"checkpoint_file": path.name, "checkpoint_sha256": _sha256(path)},
            eval_set_id=eval_set_id,
        )

    def _info(self, version: ModelVersion) -> ModelVersionInfo:
        number = int(version.version)
        metrics = dict(self.client.get_run(version.run_id).data.metrics) if version.run_id else {}
        return ModelVersionInfo(
            name=self.name,
            version=number,
            run_id=version.run_id,
            model_uri=f"models:/{self.name}/{number}",
            aliases=tuple(sorted(version.aliases)),
            contract=self.load_contract(number),
            metrics=metrics,
            eval_set_id=version.tags.get(EVAL_SET_TAG),
        )

    def _download_contract(self, version: int, directory: Path) -> Path:
        try:
            return self._download(version, CONTRACT_FILE, directory)
        except ModelArtifactError as error:
            raise ContractMissingError(str(error)) from None

    def _download(self, version: int, filename: str, directory: Path) -> Path:
        """Copy one of an exact version's artifact files into ``directory``."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"expected an exact version number, got {version!r}; resolve aliases with resolve()")
        try:
            root = self.client.get_model_version_download_uri(self.name, str(version))
        except MlflowException as error:
            if not _is_missing(error):
                raise
            raise ModelNotFoundError(
                f"{self.name} has no version {version}; versions: {self._version_numbers() or 'none'}"
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
                f"{self.name} version {version}: cannot fetch {filename} ({_first_line(error)})"
            ) from None
        return Path(local)

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(self.experiment_name, artifact_location=self.store.artifact_location)
        except MlflowException as error:  # created by another process meanwhile
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            assert experiment is not None
            return experiment.experiment_id

    def _ensure_registered_model(self) -> None:
        try:
            self.client.create_registered_model(self.name, description="deepsift face-manipulation detectors")
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise

    def _aliases(self) -> dict[str, str]:
        try:
            return dict(self.client.get_registered_model(self.name).aliases)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            return {}

    def _version_numbers(self) -> str:
        versions = self.client.search_model_versions(f"name = '{self.name}'")
        return ", ".join(str(n) for n in sorted(int(v.version) for v in versions))


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file's state dict, read as plain tensors, unwrapped and without ``module.``."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files; none may escape raw
        raise CheckpointError(f"cannot read checkpoint {path} as plain tensors: {_first_line(error)}") from None
    if isinstance(loaded, Mapping):
        for key in CHECKPOINT_WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(loaded).__name__}, not a state dict")
    return {str(key).removeprefix("module."): value for key, value in loaded.items()}


def read_contract(path: Path, label: str) -> PreprocessContract:
    """Parse a stored ``contract.json``; anything unreadable is :class:`ContractMissingError`."""
    try:
        return PreprocessContract.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ContractMissingError(f"{label}: {CONTRACT_FILE} is unreadable ({_first_line(error)})") from None


def scorer_from_files(
    state_dict_path: Path,
    contract_path: Path,
    label: str,
    device: str | torch.device | None = None,
    cpu_engine: CpuEngine = "torch",
) -> FaceScorer:
    """Build a :class:`FaceScorer` from a version's two files; the pyfunc and the registry share it.

    Errors name ``label`` (e.g. ``"deepsift-detector version 3"``) and the file.
    """
    import torch

    from deepsift.detect.architectures import UnknownArchitectureError
    from deepsift.detect.scoring import FaceScorer

    contract = read_contract(contract_path, label)
    try:
        state_dict = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage bytes raise UnpicklingError, RuntimeError, EOFError, ...
        raise ModelArtifactError(
            f"{label}: {STATE_DICT_FILE} is not a readable weights-only state dict ({_first_line(error)})"
        ) from None
    if not isinstance(state_dict, Mapping):
        raise ModelArtifactError(f"{label}: {STATE_DICT_FILE} holds a {type(state_dict).__name__}, not a state dict")
    try:
        network = load_into_network(contract.architecture, state_dict)
    except (CheckpointMismatchError, UnknownArchitectureError) as error:
        raise ModelArtifactError(f"{label}: {STATE_DICT_FILE} does not fit its contract: {error}") from None
    return FaceScorer(network, contract, device, cpu_engine)


def load_into_network(architecture: str, state_dict: Mapping[str, Any]) -> nn.Module:
    """Build ``architecture`` and load ``state_dict`` into it, or raise :class:`CheckpointMismatchError`."""
    from deepsift.detect.architectures import build_detector_network

    network = build_detector_network(architecture)
    problem = state_dict_problem(network, state_dict)
    if problem:
        raise CheckpointMismatchError(f"state dict does not fit {architecture}: {problem}")
    network.load_state_dict(state_dict, strict=True)
    return network


def state_dict_problem(network: nn.Module, state_dict: Mapping[str, Any]) -> str | None:
    """The first way ``state_dict`` fails to fit ``network`` (missing, mis-shaped or unexpected key)."""
    import torch

    expected = network.state_dict()
    problems: list[str] = []
    for key, tensor in expected.items():
        value = state_dict.get(key)
        if value is None:
            problems.append(f"missing key {key!r} (architecture expects shape {tuple(tensor.shape)})")
        elif not isinstance(value, torch.Tensor):
            problems.append(f"key {key!r} holds a {type(value).__name__}, not a tensor")
        elif value.shape != tensor.shape:
            problems.append(
                f"key {key!r}: checkpoint shape {tuple(value.shape)}, architecture expects {tuple(tensor.shape)}"
            )
    problems += [f"unexpected key {key!r}" for key in state_dict if key not in expected]
    if not problems:
        return None
    return problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")


def _compare(
    new: ModelVersionInfo, old: ModelVersionInfo, metric: str, higher_is_better: bool
) -> tuple[bool, str]:
    """Whether the challenger may replace the champion, and why (quoting both values)."""
    if new.eval_set_id is None or new.eval_set_id != old.eval_set_id:
        return False, (
            f"v{new.version} and v{old.version} were evaluated on different sets "
            f"({new.eval_set_id or 'unknown'} vs {old.eval_set_id or 'unknown'})"
        )
    new_value, old_value = new.metrics.get(metric), old.metrics.get(metric)
    if new_value is None or old_value is None:
        missing = ", ".join(f"v{v.version}" for v, x in ((new, new_value), (old, old_value)) if x is None)
        return False, f"{metric} is not logged for {missing}"
    at_least_as_good = new_value >= old_value if higher_is_better else new_value <= old_value
    relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
        (higher_is_better, at_least_as_good)
    ]
    return at_least_as_good, (
        f"challenger v{new.version} {metric} {new_value:.4f} {relation} "
        f"champion v{old.version} {metric} {old_value:.4f} on eval set {new.eval_set_id}"
    )


def _save_pyfunc(
    scratch: Path,
    code_path: Path,
    state_dict: dict[str, torch.Tensor],
    contract: PreprocessContract,
    model_card: str,
    run_id: str,
    model_id: str,
) -> Path:
    """Write the models-from-code pyfunc directory for one version under ``scratch``."""
    import torch

    files = scratch / "files"
    files.mkdir()
    torch.save(state_dict, files / STATE_DICT_FILE)
    (files / CONTRACT_FILE).write_text(contract.to_json(), encoding="utf-8")
    (files / MODEL_CARD_FILE).write_text(model_card, encoding="utf-8")
    model_dir = scratch / "model"
    size = contract.input_size
    mlflow.pyfunc.save_model(
        path=str(model_dir),
        python_model=str(code_path),
        artifacts={
            "state_dict": str(files / STATE_DICT_FILE),
            "contract": str(files / CONTRACT_FILE),
            "model_card": str(files / MODEL_CARD_FILE),
        },
        signature=ModelSignature(
            # Unnamed: a named tensor would reach predict() as a {name: array} dict.
            inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, size, size, 3))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
        ),
        input_example=np.zeros((1, size, size, 3), np.uint8),
        pip_requirements=_pip_requirements(),
        mlflow_model=Model(run_id=run_id, model_id=model_id, model_uuid=model_id),
    )
    return model_dir


def _contract_params(contract: PreprocessContract) -> dict[str, str]:
    """The contract fields worth comparing runs by in the MLflow UI."""
    return {
        "architecture": contract.architecture,
        "input_size": str(contract.input_size),
        "crop_margin": str(contract.crop_margin),
        "face_detector": contract.face_detector,
    }


def _pip_requirements() -> list[str]:
    """Pinned to what logged the model, so that a served copy rebuilds the same network."""
    import timm
    import torch

    return [
        f"deepsift=={deepsift.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"timm=={timm.__version__}",
        f"numpy=={np.__version__}",
    ]


def _is_missing(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
