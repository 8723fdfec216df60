"""Find the YuNet face-detector weights: a configured file, else the copy that ships with deepsift.

The packaged file (``models/yunet_n_640_640.onnx`` beside this module, Apache-2.0, provenance in
``models/LICENSE``) is held to a SHA-256 pinned here, so a damaged or swapped installation fails
loudly instead of detecting faces differently. Nothing is downloaded: every installation has the
weights, so face detection works offline.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from deepsift.config import FacesConfig
from deepsift.errors import DeepsiftError
from deepsift.files import file_sha256

PACKAGED_YUNET = Path(str(resources.files(__package__).joinpath("models", "yunet_n_640_640.onnx")))
"""The YuNet file inside the installed package (setuptools installs packages unzipped, so a plain path)."""
PACKAGED_YUNET_SHA256 = "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31"
"""libfacedetection.train's ``onnx/yunet_n_640_640.onnx`` at commit 0047ac24afb1, unmodified."""


class WeightsError(DeepsiftError, RuntimeError):
    """The packaged YuNet weights are missing or are not the file deepsift was released with."""


def resolve_yunet_weights(cfg: FacesConfig) -> Path:
    """The YuNet ONNX file to load: ``faces.yunet_model_path`` when set, else the verified packaged copy.

    A configured path is used as given (any YuNet version the user chose) and must exist. The
    packaged copy must exist and match :data:`PACKAGED_YUNET_SHA256`.
    """
    if cfg.yunet_model_path is not None:
        configured = Path(cfg.yunet_model_path)
        if not configured.is_file():
            raise FileNotFoundError(
                f"config key faces.yunet_model_path points at {configured}, which is not a file"
            )
        return configured
    packaged = PACKAGED_YUNET
    if not packaged.is_file():
        raise WeightsError(
            f"the YuNet weights that ship with deepsift are missing: {packaged} is not a file. "
            "Reinstall deepsift, set faces.yunet_model_path to a YuNet ONNX file, "
            "or choose the Haar cascade with faces.detector: haar"
        )
    actual = file_sha256(packaged)
    if actual != PACKAGED_YUNET_SHA256:
        raise WeightsError(
            f"the packaged YuNet weights {packaged} have sha256 {actual}, "
            f"not the {PACKAGED_YUNET_SHA256} deepsift was released with; reinstall deepsift"
        )
    return packaged
