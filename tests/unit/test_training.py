"""Training: the split by person, pseudo-fakes per epoch, early stopping, and refusals of bad data."""

from __future__ import annotations

import numpy as np
import pytest

from deepsift.detect.architectures import architecture_spec
from deepsift.detect.training import (
    FaceSample,
    SelfBlendDataset,
    TrainingDataError,
    TrainingSettings,
    held_out_videos,
    split_by_group,
    train_detector,
)
from deepsift.faces.crops import encode_crop

LANDMARKS = ((22.0, 26.0), (42.0, 26.0), (32.0, 36.0), (24.0, 46.0), (40.0, 46.0))


def _samples(n_people: int, per_person: int, size: int = 64, landmarks=None) -> list[FaceSample]:
    rng = np.random.default_rng(0)
    return [
        FaceSample(
            group=f"person-{p}",
            unit=f"person-{p}/photo-{i}.jpg",
            crop=encode_crop(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "png", 95),
            landmarks=landmarks,
        )
        for p in range(n_people)
        for i in range(per_person)
    ]


def test_split_is_by_group_stable_and_never_empty():
    ids = [f"v{i}" for i in range(40)]
    held_out = split_by_group(ids + ids, 0.25, seed=3)
    assert held_out == split_by_group(list(reversed(ids)), 0.25, seed=3)
    assert 3 <= len(held_out) <= 20
    assert split_by_group(["a", "b"], 0.01, seed=0)  # small sets still get one held-out group
    assert split_by_group(["a", "b"], 0.0, seed=0) == set()
    with pytest.raises(ValueError, match="validation_fraction"):
        split_by_group(ids, 1.0, seed=0)


def test_every_real_face_trains_beside_its_own_pseudo_fake_and_labelled_fakes_alone():
    real = _samples(1, 1)[0]
    fake = FaceSample("person-9", "fake.mp4", real.crop, label=1)
    dataset = SelfBlendDataset([real, fake], input_size=64, seed=0)
    pair, alone = dataset[0], dataset[1]
    assert [label for _, label in pair] == [0, 1] and [label for _, label in alone] == [1]
    assert not np.array_equal(pair[0][0], pair[1][0])


@pytest.mark.parametrize("landmarks", [None, LANDMARKS])
def test_pseudo_fakes_differ_from_their_real_face_only_where_blended(landmarks):
    dataset = SelfBlendDataset(_samples(1, 1, landmarks=landmarks), input_size=64, seed=0, augment=False)
    (real, _), (fake, _) = dataset[0]
    changed = np.abs(real.astype(int) - fake.astype(int)).max(axis=2) > 0
    assert changed.any() and not changed[:3].any() and not changed[-3:].any()  # never the crop border


@pytest.mark.parametrize("landmarks", [None, LANDMARKS])
def test_pseudo_fakes_are_blended_deterministically_per_epoch(landmarks):
    dataset = SelfBlendDataset(_samples(1, 1, landmarks=landmarks), input_size=64, seed=0)
    (real, _), (fake, _) = dataset[0]
    assert real.shape == fake.shape == (64, 64, 3)
    assert np.array_equal(fake, dataset[0][1][0])
    dataset.epoch = 1
    assert not np.array_equal(fake, dataset[0][1][0])


def test_wrong_crop_size_names_the_setting():
    dataset = SelfBlendDataset(_samples(1, 1, size=32), input_size=64, seed=0)
    with pytest.raises(ValueError, match=r"faces\.crop_size = 64"):
        dataset[0]


def test_a_short_run_learns_keeps_its_best_epoch_and_reports_each_epoch():
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    seen = []
    result = train_detector(
        _samples(6, 3, landmarks=LANDMARKS),
        contract,
        TrainingSettings(epochs=3, batch_size=8, validation_fraction=0.3, pretrained=False, patience=5),
        on_epoch=lambda epoch, metrics: seen.append(epoch),
    )
    assert seen == [0, 1, 2] and len(result.history) == 3
    assert set(result.train_groups).isdisjoint(result.validation_groups)
    assert result.validation_groups and "val_crop_auc" in result.history[-1]
    aucs = [m["val_crop_auc"] for m in result.history]
    assert result.best_epoch == int(np.argmax(aucs))
    assert all(np.isfinite(m["train_loss"]) for m in result.history)
    assert set(result.state_dict) == set(architecture_spec("mobilenetv3_small_050").builder().state_dict())


def test_training_stops_early_when_held_out_auc_stops_improving():
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    result = train_detector(
        _samples(6, 2),
        contract,
        TrainingSettings(epochs=30, batch_size=8, validation_fraction=0.3, pretrained=False, patience=1),
    )
    assert len(result.history) == result.best_epoch + 2 < 30


def test_too_few_people_fails_with_the_count():
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    with pytest.raises(TrainingDataError, match=r"at least 2 people or videos.*got 1"):
        train_detector(_samples(1, 4), contract, TrainingSettings(pretrained=False))
    with pytest.raises(TrainingDataError, match="no training faces"):
        train_detector([], contract, TrainingSettings(pretrained=False))


def test_random_weights_must_be_asked_for_where_no_imagenet_weights_exist():
    from deepsift.detect.pretrained import PretrainedWeightsError

    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=64)
    with pytest.raises(PretrainedWeightsError, match=r"no offline ImageNet weights.*efficientnet_lite0"):
        train_detector(_samples(3, 1), contract, TrainingSettings())


def test_held_out_units_become_videos_with_their_self_blended_copies():
    samples = _samples(3, 2, landmarks=LANDMARKS)
    videos = held_out_videos(samples, {"person-1"}, seed=0)
    assert [(v.video_id, v.label, len(v.crops)) for v in videos] == [
        ("person-1/photo-0.jpg", 0, 1),
        ("person-1/photo-0.jpg#selfblend", 1, 1),
        ("person-1/photo-1.jpg", 0, 1),
        ("person-1/photo-1.jpg#selfblend", 1, 1),
    ]
    assert not np.array_equal(videos[0].crops, videos[1].crops)
