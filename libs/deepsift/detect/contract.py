"""The preprocessing contract: everything a detector needs its inputs to look like.

It is saved with every model version, and the scan reads it from the model it resolved, so that a
model and the crops it scores never disagree (crop size, margin, face detector, frames per video),
and the verdict rule and thresholds travel with the weights that were calibrated for them.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepsift.config import Config
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


def config_for_contract(config: Config, contract: PreprocessContract) -> Config:
    """The deployment config with the face and sampling settings a model's contract requires."""
    faces = config.faces.model_copy(
        update={"crop_size": contract.input_size, "margin": contract.crop_margin, "detector": contract.face_detector}
    )
    sampling = config.sampling.model_copy(update={"frames_per_video": contract.frames_per_video})
    return config.model_copy(update={"faces": faces, "sampling": sampling})
