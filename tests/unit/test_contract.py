"""The preprocessing contract's extraction options: old contracts keep their crops, new options reach
extraction, and a deployment that asks for other settings than the model's is refused by name."""

from __future__ import annotations

import pytest

from deepsift.config import load_config
from deepsift.detect.contract import (
    ContractOptionError,
    PreprocessContract,
    config_for_contract,
    contract_with_options,
)
from deepsift.detect.contract_check import ContractSettingError, refuse_contract_conflicts
from deepsift.faces.extraction import preprocess_version

DETECTOR = "yunet:0123456789ab"
SAVED_CONTRACTS = {
    # The starter detector's contract as versions registered before the extraction options saved it.
    '{"contract_version": 1, "architecture": "efficientnet_lite0", "input_size": 160, "mean": [0.5, 0.5, 0.5], '
    '"std": [0.5, 0.5, 0.5], "channel_order": "rgb", "crop_margin": 0.3, "face_detector": "yunet", '
    '"frames_per_video": 32, "aggregation": "confident", "thresholds": {"suspicious": 0.61, "manipulated": 0.83}}':
        "pp-483d17963ace",
    '{"architecture": "mobilenetv3_small_050", "input_size": 64, "crop_margin": 0.5, "face_detector": "haar", '
    '"frames_per_video": 8, "aggregation": "mean"}': "pp-654ed00de390",
}
"""Contracts without the extraction options, and the preprocess_version their crops were cached under."""


def _version(contract: PreprocessContract, **overrides: object) -> str:
    config = config_for_contract(load_config(environ={}, overrides=overrides), contract)
    return preprocess_version(config.sampling, config.faces, DETECTOR)


@pytest.mark.parametrize("saved", list(SAVED_CONTRACTS))
def test_a_contract_saved_before_the_options_keeps_its_preprocess_version(saved: str) -> None:
    assert _version(PreprocessContract.from_json(saved)) == SAVED_CONTRACTS[saved]


def test_each_option_reaches_the_extraction_settings_and_the_preprocess_version() -> None:
    base = PreprocessContract.from_json(next(iter(SAVED_CONTRACTS)))
    options = {"detect_max_side": "320", "keyframe_min_coverage": "0.4", "reference_frames_only": "true"}
    versions = {_version(base)}
    for name, value in options.items():
        changed = contract_with_options(base, [f"{name}={value}"])
        versions.add(_version(changed))
        config = config_for_contract(load_config(environ={}), changed)
        settings = config.faces if name == "detect_max_side" else config.sampling
        assert str(getattr(settings, name)).lower() == value
    assert len(versions) == 1 + len(options)


def test_only_extraction_options_can_be_changed() -> None:
    base = PreprocessContract(architecture="efficientnet_b0", input_size=224)
    with pytest.raises(ContractOptionError, match="input_size=160"):
        contract_with_options(base, ["input_size=160"])
    with pytest.raises(ContractOptionError, match="detect_max_side=8"):
        contract_with_options(base, ["detect_max_side=8"])


def test_an_explicit_setting_the_model_was_not_trained_for_is_refused_by_name() -> None:
    contract = PreprocessContract(architecture="efficientnet_b0", input_size=224, reference_frames_only=True)
    explicit = load_config(
        environ={"DEEPSIFT_FACES__DETECT_MAX_SIDE": "320", "DEEPSIFT_SAMPLING__REFERENCE_FRAMES_ONLY": "false"}
    )
    with pytest.raises(ContractSettingError) as refused:
        refuse_contract_conflicts(explicit, contract, "models:/deepsift-detector/7")
    message = str(refused.value)
    assert "config key faces.detect_max_side is 320, but models:/deepsift-detector/7 was trained for 640" in message
    assert "config key sampling.reference_frames_only is False, but models:/deepsift-detector/7 was trained for True" in message


def test_defaults_and_explicit_settings_that_agree_are_not_refused() -> None:
    contract = PreprocessContract(architecture="efficientnet_b0", input_size=160, crop_margin=0.5)
    refuse_contract_conflicts(load_config(environ={}), contract, "models:/m/1")
    agreeing = load_config(environ={}, overrides={"faces.crop_size": 160, "faces.margin": 0.5, "faces.min_face_px": 40})
    refuse_contract_conflicts(agreeing, contract, "models:/m/1")
