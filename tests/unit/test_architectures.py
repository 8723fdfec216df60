"""The architecture registry builds offline, single-logit networks by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepsift.detect.architectures import (
    INCEPTION_MEAN,
    UnknownArchitectureError,
    architecture_spec,
    build_detector_network,
    known_architectures,
    register_architecture,
)


@pytest.mark.parametrize(
    ("name", "input_size"),
    [("mobilenetv3_small_050", 224), ("efficientnet_b0", 224), ("efficientnet_b4", 380), ("xception", 299)],
)
def test_registered_architectures_give_one_logit_per_image(name: str, input_size: int) -> None:
    assert known_architectures()[name].default_input_size == input_size
    network = build_detector_network(name).eval()
    with torch.inference_mode():
        logits = network(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 1)


def test_networks_start_from_random_weights_not_a_download() -> None:
    torch.manual_seed(0)
    first = build_detector_network("mobilenetv3_small_050").state_dict()
    torch.manual_seed(1)
    second = build_detector_network("mobilenetv3_small_050").state_dict()
    key = "conv_stem.weight"
    assert not torch.equal(first[key], second[key])


def test_unknown_architecture_lists_the_known_names() -> None:
    with pytest.raises(UnknownArchitectureError, match="resnet9000") as caught:
        build_detector_network("resnet9000")
    assert isinstance(caught.value, ValueError)
    for name in ("efficientnet_b0", "efficientnet_b4", "mobilenetv3_small_050", "xception"):
        assert name in str(caught.value)


def test_default_contract_carries_the_architecture_normalisation() -> None:
    contract = architecture_spec("xception").default_contract(input_size=128)
    assert (contract.architecture, contract.input_size, contract.mean) == ("xception", 128, INCEPTION_MEAN)
    assert architecture_spec("efficientnet_b4").default_contract().input_size == 380


def test_register_architecture_adds_a_name_once() -> None:
    @register_architecture("test_tiny_linear", default_input_size=32)
    def _tiny() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1))

    assert build_detector_network("test_tiny_linear")(torch.zeros(1, 3, 32, 32)).shape == (1, 1)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("test_tiny_linear", default_input_size=32)(_tiny)
