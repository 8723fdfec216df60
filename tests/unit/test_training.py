"""Training pieces that need no Spark: the split by video, the dataset, a short real training run."""

from __future__ import annotations

import numpy as np
import pytest

from deepsift.detect.architectures import architecture_spec
from deepsift.detect.training import (
    CropDataset,
    CropExample,
    TrainingSettings,
    split_by_video,
    train_detector,
    with_self_blended_fakes,
)
from deepsift.faces.crops import encode_crop


def _crops(n_videos: int, per_video: int, size: int = 64) -> list[CropExample]:
    rng = np.random.default_rng(0)
    return [
        CropExample(f"video-{v}", encode_crop(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "png", 95), 0)
        for v in range(n_videos)
        for _ in range(per_video)
    ]


def test_split_is_by_video_stable_and_never_empty():
    ids = [f"v{i}" for i in range(40)]
    held_out = split_by_video(ids + ids, 0.25, seed=3)
    assert held_out == split_by_video(list(reversed(ids)), 0.25, seed=3)
    assert 3 <= len(held_out) <= 20
    assert split_by_video(["a", "b"], 0.01, seed=0)  # small sets still get one held-out video
    assert split_by_video(["a", "b"], 0.0, seed=0) == set()
    with pytest.raises(ValueError, match="validation_fraction"):
        split_by_video(ids, 1.0, seed=0)


def test_pseudo_fakes_are_blended_deterministically_per_epoch():
    examples = with_self_blended_fakes(_crops(1, 1))
    assert [e.label for e in examples] == [0, 1] and examples[1].self_blend
    dataset = CropDataset(examples, input_size=64, seed=0)
    real, fake = dataset[0][0], dataset[1][0]
    assert real.shape == fake.shape == (64, 64, 3)
    assert not np.array_equal(real, fake)
    assert np.array_equal(fake, dataset[1][0])
    dataset.epoch = 1
    assert not np.array_equal(fake, dataset[1][0])


def test_wrong_crop_size_names_the_setting():
    dataset = CropDataset(_crops(1, 1, size=32), input_size=64, seed=0)
    with pytest.raises(ValueError, match="faces.crop_size = 64"):
        dataset[0]


def test_a_short_run_learns_and_reports_each_epoch():
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    seen = []
    result = train_detector(
        with_self_blended_fakes(_crops(4, 4)),
        contract,
        TrainingSettings(epochs=2, batch_size=8, validation_fraction=0.25),
        on_epoch=lambda epoch, metrics: seen.append(epoch),
    )
    assert seen == [0, 1] and len(result.history) == 2
    assert set(result.train_videos).isdisjoint(result.validation_videos)
    assert result.validation_videos and "val_loss" in result.history[-1]
    assert all(np.isfinite(m["train_loss"]) for m in result.history)
    assert set(result.state_dict) == set(architecture_spec("mobilenetv3_small_050").builder().state_dict())
