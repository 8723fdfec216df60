"""The preprocessing contract: everything a detector needs its inputs to look like.

It is saved with every model version, and the scan reads it from the model it resolved, so that a
model and the crops it scores never disagree (crop size, margin, face detector, frames per video),
and the verdict rule and thresholds travel with the weights that were calibrated for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepsift.config import Config
from deepsift.errors import DeepsiftError
from deepsift.verdicts.aggregation import check_aggregation
from deepsift.verdicts.cascade import Cascade
from deepsift.verdicts.labels import Thresholds  # the verdict stage's; a contract carries the calibrated ones

CONTRACT_FILE = "contract.json"


class PreprocessContract(BaseModel):
    """How crops are made and scores are read for one model version.

    >>> c = PreprocessContract(architecture="efficientnet_b0", input_size=224)
    >>> PreprocessContract.from_json(c.to_json()) == c
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_version: int = 1
    architecture: str
    input_size: int = Field(ge=32, le=1024)
    """Crops are square, ``input_size`` pixels a side; the scan extracts them at this size."""
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: Literal["rgb"] = "rgb"
    crop_margin: float = Field(0.3, ge=0.0, le=2.0)
    face_detector: Literal["yunet", "haar"] = "yunet"
    frames_per_video: int = Field(32, ge=1, le=1024)
    detect_max_side: int = Field(640, ge=64)
    """Face detection runs on frames shrunk to at most this many pixels a side (smaller: cheaper, misses
    small faces)."""
    keyframe_min_coverage: float = Field(0.75, gt=0.0, le=1.0)
    """Only keyframes are decoded when they can stand in for at least this share of the wanted frames; a
    lower share takes fewer frames from videos whose keyframes are sparse."""
    reference_frames_only: bool = False
    """Decode only reference frames and take the one nearest each wanted time (fewer core-seconds)."""
    aggregation: str = "confident"
    thresholds: Thresholds = Field(default_factory=Thresholds)
    cascade: Cascade | None = None
    """Score a few frames first and stop when they settle the verdict (``deepsift.verdicts.cascade``);
    None scores every face."""

    @field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str) -> str:
        return check_aggregation(value)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> PreprocessContract:
        """Parse a saved contract; a missing or malformed one is a ``ValueError`` naming the problem."""
        try:
            return cls.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"invalid preprocessing contract: {error}") from None


CONTRACT_SETTINGS: dict[str, tuple[Literal["faces", "sampling"], str]] = {
    "input_size": ("faces", "crop_size"),
    "crop_margin": ("faces", "margin"),
    "face_detector": ("faces", "detector"),
    "detect_max_side": ("faces", "detect_max_side"),
    "frames_per_video": ("sampling", "frames_per_video"),
    "keyframe_min_coverage": ("sampling", "keyframe_min_coverage"),
    "reference_frames_only": ("sampling", "reference_frames_only"),
}
"""Each contract field that fixes a deployment setting: the config section and key it overrides."""

EXTRACTION_OPTIONS = ("frames_per_video", "detect_max_side", "keyframe_min_coverage", "reference_frames_only")
"""Contract fields the same weights may be registered again with: each trades work per video for crops
that differ from those the weights were trained and calibrated on (``docs/benchmarks.md`` measures them)."""


class ContractOptionError(DeepsiftError, ValueError):
    """A contract option is unknown, not ``NAME=VALUE``, or out of range; the message names it."""


def contract_with_options(contract: PreprocessContract, options: Sequence[str]) -> PreprocessContract:
    """``contract`` with ``NAME=VALUE`` extraction options applied and checked; a name not in
    :data:`EXTRACTION_OPTIONS` or a value out of range is a :class:`ContractOptionError` naming it.

    >>> base = PreprocessContract(architecture="efficientnet_b0", input_size=224)
    >>> changed = contract_with_options(base, ["detect_max_side=320", "reference_frames_only=true"])
    >>> changed.detect_max_side, changed.reference_frames_only, changed.input_size
    (320, True, 224)
    """
    changes: dict[str, str] = {}
    for option in options:
        name, equals, value = option.partition("=")
        if name not in EXTRACTION_OPTIONS or not equals:
            raise ContractOptionError(f"contract option {option!r} is not NAME=VALUE with NAME one of {', '.join(EXTRACTION_OPTIONS)}")
        changes[name] = value
    try:
        return PreprocessContract.model_validate(contract.model_dump() | changes)
    except ValueError as error:
        raise ContractOptionError(f"contract options {', '.join(options)}: {error}") from None


def config_for_contract(config: Config, contract: PreprocessContract) -> Config:
    """The deployment config with the face and sampling settings a model's contract requires."""
    updates: dict[str, dict[str, object]] = {"faces": {}, "sampling": {}}
    for field_name, (section, key) in CONTRACT_SETTINGS.items():
        updates[section][key] = getattr(contract, field_name)
    return config.model_copy(
        update={section: getattr(config, section).model_copy(update=values) for section, values in updates.items()}
    )
