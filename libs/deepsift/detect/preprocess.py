"""Turn stored face crops into the tensor a detector expects, exactly as its contract says.

Crops are stored and passed around as OpenCV images: ``uint8``, height x width x 3, BGR. Networks
take float32 NCHW RGB normalised with the contract's mean and std. The conversion runs in torch on
the target device, so that a GPU receives 1 byte per pixel instead of 4.
"""

from __future__ import annotations

import numpy as np
import torch

from deepsift.detect.contract import PreprocessContract

_BGR_TO_RGB = [2, 1, 0]


class CropFormatError(ValueError):
    """A batch of crops does not match the contract; the message says what was expected and got."""


def validate_crops(crops: np.ndarray, contract: PreprocessContract) -> None:
    """Raise :class:`CropFormatError` unless ``crops`` is ``uint8`` of shape (N, S, S, 3), S = input size."""
    size = contract.input_size
    expected = f"uint8 array of shape (N, {size}, {size}, 3) in BGR order"
    if not isinstance(crops, np.ndarray):
        raise CropFormatError(f"expected a numpy {expected}, got {type(crops).__name__}")
    if crops.dtype != np.uint8:
        raise CropFormatError(f"expected a {expected}, got dtype {crops.dtype}")
    if crops.ndim != 4:
        raise CropFormatError(f"expected a {expected}, got {crops.ndim} dimensions {crops.shape}")
    if crops.shape[3] != 3:
        raise CropFormatError(f"expected a {expected}, got {crops.shape[3]} channels {crops.shape}")
    if crops.shape[1:3] != (size, size):
        raise CropFormatError(
            f"expected a {expected}, got crops of {crops.shape[1]}x{crops.shape[2]} {crops.shape}; "
            f"the model was trained at {size} px, so crops must be extracted at that size"
        )


def crops_to_tensor(
    crops: np.ndarray,
    contract: PreprocessContract,
    device: str | torch.device = "cpu",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Convert (N, S, S, 3) uint8 BGR crops into a normalised float32 (N, 3, S, S) RGB tensor on ``device``.

    ``memory_format`` is the tensor's layout: ``torch.channels_last`` for a network in that layout.

    An empty batch (shape (0, S, S, 3)) gives an empty tensor of shape (0, 3, S, S); a batch of
    another dtype, rank, size or channel count raises :class:`CropFormatError`.

    >>> contract = PreprocessContract(architecture="efficientnet_b0", input_size=64)
    >>> crops_to_tensor(np.zeros((2, 64, 64, 3), np.uint8), contract).shape
    torch.Size([2, 3, 64, 64])
    """
    validate_crops(crops, contract)
    pixels = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True)
    mean = torch.tensor(contract.mean, dtype=torch.float32, device=pixels.device)
    std = torch.tensor(contract.std, dtype=torch.float32, device=pixels.device)
    # (x / 255 - mean) / std folded into one multiply and one subtract.
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
    shift = (mean / std).view(1, 3, 1, 1)
    nchw_rgb = pixels.permute(0, 3, 1, 2)[:, _BGR_TO_RGB]
    return nchw_rgb.to(torch.float32, memory_format=memory_format).mul_(scale).sub_(shift)
