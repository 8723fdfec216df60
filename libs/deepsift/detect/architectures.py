"""Named detector architectures: one place that maps a name saved in a model version to a network.

A model version stores only an architecture name and a state dict, so loading it must rebuild the
exact network from the name alone. Every architecture here is a ``timm`` model created with
``pretrained=False`` (nothing is downloaded, ever) and a single-logit head: ``network(x)`` has shape
``(N, 1)`` and ``sigmoid`` of it is P(manipulated).

>>> network = build_detector_network("mobilenetv3_small_050")
>>> known_architectures()["efficientnet_b0"].default_input_size
224
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import timm
from torch import nn

from deepsift.detect.contract import PreprocessContract

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

NetworkBuilder = Callable[[], nn.Module]


class UnknownArchitectureError(ValueError):
    """An architecture name that is not registered; the message lists the known names."""


@dataclass(frozen=True)
class ArchitectureSpec:
    """A registered architecture: how to build it and the preprocessing it was designed for."""

    name: str
    default_input_size: int
    builder: NetworkBuilder
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

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
) -> Callable[[NetworkBuilder], NetworkBuilder]:
    """Register a zero-argument builder under ``name``; a name can be registered once.

    >>> @register_architecture("my_net", default_input_size=128)  # doctest: +SKIP
    ... def _my_net() -> nn.Module:
    ...     return timm.create_model("resnet18", pretrained=False, num_classes=1)
    """

    def decorate(builder: NetworkBuilder) -> NetworkBuilder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchitectureSpec(name, default_input_size, builder, mean, std)
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


def build_detector_network(name: str) -> nn.Module:
    """A freshly initialised network (random weights) with one logit output, in training mode.

    >>> build_detector_network("efficientnet_b0").num_classes
    1
    """
    return architecture_spec(name).builder()


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
