"""Refuse a scan whose deployment config asks for crops the model was not trained for.

A model's contract fixes the crop settings it scores (:data:`deepsift.detect.contract.CONTRACT_SETTINGS`),
and :func:`deepsift.detect.contract.config_for_contract` puts them over the deployment config. A key the
deployment sets *explicitly* (YAML, ``DEEPSIFT_*`` environment, overrides) to another value is a request
the model cannot honour, so the scan stops before any Spark job and names the key, both values and the
version, instead of quietly extracting what the contract says. Keys left at their defaults are not
requests: the contract's values apply to them without a word.
"""

from __future__ import annotations

from pydantic import BaseModel

from deepsift.config import Config
from deepsift.detect.contract import CONTRACT_SETTINGS, PreprocessContract
from deepsift.errors import DeepsiftError


class ContractSettingError(DeepsiftError, ValueError):
    """The deployment config explicitly sets a crop setting to a value the model's contract does not have."""


def explicit_contract_conflicts(config: Config, contract: PreprocessContract) -> list[tuple[str, object, object]]:
    """(config key, configured value, contract value) of each explicitly set key the contract overrides.

    >>> from deepsift.config import load_config
    >>> contract = PreprocessContract(architecture="efficientnet_b0", input_size=224)
    >>> explicit_contract_conflicts(load_config(environ={}, overrides={"faces.detect_max_side": 320}), contract)
    [('faces.detect_max_side', 320, 640)]
    >>> explicit_contract_conflicts(load_config(environ={}, overrides={"faces.crop_size": 224}), contract)
    []
    """
    conflicts: list[tuple[str, object, object]] = []
    for field_name, (section_name, key) in CONTRACT_SETTINGS.items():
        section: BaseModel = getattr(config, section_name)
        if section_name not in config.model_fields_set or key not in section.model_fields_set:
            continue
        configured, trained = getattr(section, key), getattr(contract, field_name)
        if configured != trained:
            conflicts.append((f"{section_name}.{key}", configured, trained))
    return conflicts


def refuse_contract_conflicts(config: Config, contract: PreprocessContract, model_uri: str) -> None:
    """Raise :class:`ContractSettingError` naming every explicitly set key that ``model_uri``'s contract
    contradicts; return quietly when there is none."""
    conflicts = explicit_contract_conflicts(config, contract)
    if conflicts:
        named = "; ".join(
            f"config key {key} is {configured!r}, but {model_uri} was trained for {trained!r}"
            for key, configured, trained in conflicts
        )
        raise ContractSettingError(
            f"{named}: unset the key(s) to scan with the model's own settings, or scan with a version whose "
            "contract has these values"
        )
