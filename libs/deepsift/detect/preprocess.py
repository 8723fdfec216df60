"""Turn stored face crops into the tensor a detector expects, exactly as its contract says.

Crops are stored and passed around as OpenCV images: ``uint8``, height x width x 3, BGR. Networks
take float32 NCHW RGB normalised with the contract's mean and std. For a torch network the conversion
runs in torch on the target device, so that a GPU receives 1 byte per pixel instead of 4; for an ONNX
graph it runs in NumPy (:func:`crops_to_array`, the same arithmetic), so that scoring from a cached
graph never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deepsift.detect.contract import PreprocessContract

if TYPE_CHECKING:
    import torch

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
    memory_format: torch.memory_format | None = None,
) -> torch.Tensor:
    """Convert (N, S, S, 3) uint8 BGR crops into a normalised float32 (N, 3, S, S) RGB tensor on ``device``.

    ``memory_format`` is the tensor's layout: ``torch.channels_last`` for a network in that layout,
    None for contiguous.

    An empty batch (shape (0, S, S, 3)) gives an empty tensor of shape (0, 3, S, S); a batch of
    another dtype, rank, size or channel count raises :class:`CropFormatError`.

    >>> contract = PreprocessContract(architecture="efficientnet_b0", input_size=64)
    >>> crops_to_tensor(np.zeros((2, 64, 64, 3), np.uint8), contract).shape
    torch.Size([2, 3, 64, 64])
    """
    import torch

    validate_crops(crops, contract)
    pixels = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True)
    mean = torch.tensor(contract.mean, dtype=torch.float32, device=pixels.device)
    std = torch.tensor(contract.std, dtype=torch.float32, device=pixels.device)
    # (x / 255 - mean) / std folded into one multiply and one subtract.
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1)
    shift = (mean / std).view(1, 3, 1, 1)
    nchw_rgb = pixels.permute(0, 3, 1, 2)[:, _BGR_TO_RGB]
    layout = torch.contiguous_format if memory_format is None else memory_format
    return nchw_rgb.to(torch.float32, memory_format=layout).mul_(scale).sub_(shift)


def crops_to_array(crops: np.ndarray, contract: PreprocessContract) -> np.ndarray:
    """:func:`crops_to_tensor` in NumPy: a contiguous normalised float32 (N, 3, S, S) RGB array.

    The same float32 operations in the same order, so the two agree to the last bit.

    >>> contract = PreprocessContract(architecture="efficientnet_b0", input_size=64)
    >>> crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    >>> bool((crops_to_array(crops, contract) == crops_to_tensor(crops, contract).numpy()).all())
    True
    """
    validate_crops(crops, contract)
    mean = np.asarray(contract.mean, dtype=np.float32)
    std = np.asarray(contract.std, dtype=np.float32)
    scale = (np.float32(1.0) / (np.float32(255.0) * std)).reshape(1, 3, 1, 1)
    shift = (mean / std).reshape(1, 3, 1, 1)
    nchw_rgb = crops.transpose(0, 3, 1, 2)[:, _BGR_TO_RGB].astype(np.float32, order="C")
    nchw_rgb *= scale
    nchw_rgb -= shift
    return nchw_rgb
