"""Training a detector from face crops: real crops, labelled fakes, and self-blended pseudo-fakes.

A platform's uploads are overwhelmingly real, so every real crop can also appear as a self-blended
fake (``deepsift.detect.selfblend``); labelled fakes (moderator decisions, datasets the user owns)
join as they are. Train and validation sets are split by video, never by frame: frames of one video
are near-duplicates, and a split by frame would measure memory rather than detection.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepsift.detect.architectures import build_detector_network
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.preprocess import crops_to_tensor
from deepsift.detect.selfblend import self_blend
from deepsift.faces.crops import decode_crop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropExample:
    """One training crop: encoded image bytes, its label (1 = manipulated) and the video it came from.

    ``self_blend`` marks a real crop that should be turned into a pseudo-fake when it is loaded.
    """

    video_id: str
    crop: bytes
    label: int
    self_blend: bool = False


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.25
    seed: int = 0
    max_steps: int | None = None
    """Stop after this many optimiser steps in total (for smoke runs); None trains every epoch."""


@dataclass
class TrainingResult:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    train_videos: list[str] = field(default_factory=list)
    validation_videos: list[str] = field(default_factory=list)


def with_self_blended_fakes(real: list[CropExample]) -> list[CropExample]:
    """Each real crop twice: as itself (label 0) and as a self-blended pseudo-fake (label 1)."""
    fakes = [CropExample(e.video_id, e.crop, 1, self_blend=True) for e in real if e.label == 0]
    return real + fakes


def split_by_video(video_ids: list[str], validation_fraction: float, seed: int) -> set[str]:
    """The videos held out for validation: a stable hash decides, so a video never changes side.

    With at least two videos and a non-zero fraction, at least one video is held out (the one with
    the lowest hash), so that small data sets still get a validation set.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    ranked = sorted(
        (int.from_bytes(hashlib.sha256(f"{seed}:{video_id}".encode()).digest()[:8], "big") / 2**64, video_id)
        for video_id in set(video_ids)
    )
    held_out = {video_id for position, video_id in ranked if position < validation_fraction}
    if not held_out and validation_fraction > 0 and len(ranked) >= 2:
        held_out.add(ranked[0][1])
    return held_out


class CropDataset(Dataset):
    """Decodes crops on access; pseudo-fakes are blended with an rng seeded by (seed, epoch, index)."""

    def __init__(self, examples: list[CropExample], input_size: int, seed: int) -> None:
        self.examples = examples
        self.input_size = input_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        example = self.examples[index]
        crop = decode_crop(example.crop)
        if crop.shape[:2] != (self.input_size, self.input_size):
            raise ValueError(
                f"crop of video {example.video_id} is {crop.shape[1]}x{crop.shape[0]}, the contract needs "
                f"{self.input_size}x{self.input_size}: extract faces with faces.crop_size = {self.input_size}"
            )
        if example.self_blend:
            crop, _ = self_blend(crop, np.random.default_rng((self.seed, self.epoch, index)))
        return crop, example.label


def _collate(batch: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, torch.Tensor]:
    crops = np.stack([crop for crop, _ in batch])
    labels = torch.tensor([label for _, label in batch], dtype=torch.float32)
    return crops, labels


def train_detector(
    examples: list[CropExample],
    contract: PreprocessContract,
    settings: TrainingSettings,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainingResult:
    """Train ``contract.architecture`` from scratch on ``examples``; report each epoch to ``on_epoch``.

    Runs on the GPU when one is visible, else on the CPU. Validation metrics are per crop (the video
    level evaluation is ``deepsift.detect.evaluation``'s job).
    """
    if not examples:
        raise ValueError("no training examples: extract faces first, or check the filters")
    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    held_out = split_by_video([e.video_id for e in examples], settings.validation_fraction, settings.seed)
    train = [e for e in examples if e.video_id not in held_out]
    validation = [e for e in examples if e.video_id in held_out]
    if not train:
        raise ValueError("every video fell into the validation split: lower validation_fraction or add videos")
    train_set = CropDataset(train, contract.input_size, settings.seed)
    loader = DataLoader(
        train_set,
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    network = build_detector_network(contract.architecture).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    result = TrainingResult(
        state_dict={},
        train_videos=sorted({e.video_id for e in train}),
        validation_videos=sorted(held_out & {e.video_id for e in examples}),
    )
    steps = 0
    for epoch in range(settings.epochs):
        train_set.epoch = epoch
        network.train()
        losses = []
        for crops, labels in loader:
            logits = network(crops_to_tensor(crops, contract, device)).squeeze(1)
            loss = loss_fn(logits, labels.to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            steps += 1
            if settings.max_steps is not None and steps >= settings.max_steps:
                break
        metrics = {"train_loss": float(np.mean(losses)), "steps": float(steps)}
        if validation:
            metrics |= _validate(network, validation, contract, settings, loss_fn, device)
        result.history.append(metrics)
        log.info("epoch %d: %s", epoch, metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if settings.max_steps is not None and steps >= settings.max_steps:
            break
    result.state_dict = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    return result


def _validate(network, examples, contract, settings, loss_fn, device) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    loader = DataLoader(
        CropDataset(examples, contract.input_size, settings.seed + 1), batch_size=settings.batch_size, collate_fn=_collate
    )
    network.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for crops, batch_labels in loader:
            logits.append(network(crops_to_tensor(crops, contract, device)).squeeze(1).cpu())
            labels.append(batch_labels)
    all_logits, all_labels = torch.cat(logits), torch.cat(labels)
    metrics = {"val_loss": float(loss_fn(all_logits, all_labels))}
    if len(set(all_labels.tolist())) == 2:
        metrics["val_crop_auc"] = float(roc_auc_score(all_labels.numpy(), torch.sigmoid(all_logits).numpy()))
    return metrics
