"""The detector registry's facade: :class:`DetectorRegistry`, the one object callers use.

A version is one MLflow *logged model* registered under ``MlflowConfig.registered_model``: weights,
preprocessing contract and model card as a models-from-code pyfunc (:mod:`~deepsift.registry.packaging`),
metrics on the run that logged it, tags ``architecture`` and ``eval_set_id`` on the version
(:mod:`~deepsift.registry.tracking`). The facade composes the package's modules: the store
(:mod:`~deepsift.registry.store`), reading versions and their cached contracts
(:mod:`~deepsift.registry.versions`), the promotion rule (:mod:`~deepsift.registry.promotion`) and
checkpoint files (:mod:`~deepsift.registry.checkpoints`).

The scan resolves an alias once on the driver (:meth:`DetectorRegistry.resolve`), downloads that exact
version's files there (:meth:`DetectorRegistry.version_files`) and ships them to its executors, which
build the same :class:`FaceScorer` the pyfunc wraps without MLflow
(:mod:`~deepsift.registry.version_files`). Every client is bound to this registry's store:
nothing here changes MLflow's process-wide tracking URI or active run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsift.config import CpuEngine, MlflowConfig
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.graph_cache import VersionFiles
from deepsift.registry.checkpoints import checkpoint_params, load_into_network, read_checkpoint
from deepsift.registry.errors import ModelNotFoundError, RegistryError
from deepsift.registry.packaging import contract_params, log_pyfunc, pyfunc_code_path
from deepsift.registry.promotion import FORCED_PROMOTION_TAG, PROMOTION_TAG, PromotionDecision, decide_promotion
from deepsift.registry.store import MlflowStore, embedded_store
from deepsift.registry.tracking import (
    ensure_experiment,
    ensure_registered_model,
    log_run_values,
    run_tags,
    start_logged_model,
    version_tags,
)
from deepsift.registry.version_files import STATE_DICT_FILE, scorer_for_version
from deepsift.registry.versions import EVAL_SET_TAG, ModelVersionInfo, RegisteredVersions

if TYPE_CHECKING:  # torch, timm and the network code load only where a network is built: not on a scan's driver
    import torch

    from deepsift.detect.scoring import FaceScorer

__all__ = ["DetectorRegistry", "MlflowStore", "ModelVersionInfo", "PromotionDecision", "embedded_store"]
"""The facade, and the names its callers import from here: the store and what its methods return."""


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
        self.client = self.store.client()
        self.versions = RegisteredVersions(self.client, self.store, self.name)

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
        experiment_id = ensure_experiment(self.client, self.experiment_name, self.store.artifact_location)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=run_tags(contract, eval_set_id))
        run_id = run.info.run_id
        try:
            logged = start_logged_model(self.client, experiment_id, run_id)
            run_params = {**(params or {}), **contract_params(contract)}
            log_run_values(self.client, run_id, logged.model_id, metrics, run_params)
            log_pyfunc(self.client, logged.model_id, run_id, code_path, state_dict, contract, model_card)
            ensure_registered_model(self.client, self.name)
            created = self.client.create_model_version(
                self.name,
                # The storage location, not "models:/<model_id>": MLflow's SQL registry resolves
                # the latter with the process-wide tracking URI, not this client's.
                source=logged.artifact_location,
                run_id=run_id,
                model_id=logged.model_id,
                tags=version_tags(contract, eval_set_id),
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
        return self.versions.info(self.versions.find(reference))

    def list_versions(self) -> list[ModelVersionInfo]:
        """Every version of the registered model, oldest first (empty if none was registered).

        >>> [v.version for v in registry.list_versions()][:3]
        [1, 2, 3]
        """
        versions = self.client.search_model_versions(f"name = '{self.name}'")
        # search results carry no aliases in every MLflow store, so each version is read whole
        return [
            self.versions.info(self.client.get_model_version(self.name, v.version))
            for v in sorted(versions, key=lambda v: int(v.version))
        ]

    def load_contract(self, version: int) -> PreprocessContract:
        """The preprocessing contract of an exact version (:class:`ContractMissingError` if absent).

        >>> registry.load_contract(3).input_size
        64
        """
        return self.versions.read_contract(version)

    def load_scorer(
        self, version: int, device: str | torch.device | None = None, cpu_engine: CpuEngine = "torch"
    ) -> FaceScorer:
        """A :class:`FaceScorer` built from an exact version's weights and contract, scoring on ``device``
        with ``cpu_engine`` when that is a CPU.

        Takes a version number, not an alias: what was resolved once is what scores.
        A missing, corrupt or mismatched file raises :class:`ModelArtifactError` naming the version
        and file.
        On the CPU with ONNX Runtime the version's checked graph comes from this host's graph cache
        (:mod:`deepsift.detect.graph_cache`, keyed by this store, name, version and weights) when it
        holds one, without importing torch or timm; otherwise it is exported and cached there.

        >>> scorer = registry.load_scorer(registry.resolve("@champion").version)
        >>> scores = scorer.score(crops)  # two 64 x 64 RGB crops
        >>> scores.shape, scores.dtype, bool(((scores > 0) & (scores < 1)).all())
        ((2,), dtype('float32'), True)
        """
        with tempfile.TemporaryDirectory() as scratch:
            return scorer_for_version(self.version_files(version, Path(scratch)), device, cpu_engine)

    def version_files(self, version: int, folder: Path) -> VersionFiles:
        """Download an exact version's weights and contract into ``folder``: what a scorer is built from,
        on this host (:meth:`load_scorer`) or on executors the scan ships them to
        (:func:`~deepsift.registry.version_files.ship_version`).

        >>> files = registry.version_files(3, folder)
        >>> files.state_dict.name, files.contract.name, files.version
        ('state_dict.pt', 'contract.json', 3)
        """
        contract = self.versions.download_contract(version, folder)
        state_dict = self.versions.download(version, STATE_DICT_FILE, folder)
        return VersionFiles(self.store.tracking_uri, self.store.registry_uri, self.name, version, state_dict, contract)

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
        decision = decide_promotion(new, old, champion, metric, higher_is_better=higher_is_better, force=force)
        if decision.promoted:
            self.client.set_registered_model_alias(self.name, champion, str(new.version))
            self.client.set_model_version_tag(self.name, str(new.version), PROMOTION_TAG, decision.reason)
            if decision.forced:
                self.client.set_model_version_tag(self.name, str(new.version), FORCED_PROMOTION_TAG, "true")
        return decision

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
            params=checkpoint_params(path),
            eval_set_id=eval_set_id,
        )
