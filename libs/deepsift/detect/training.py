"""Training a detector from real faces: self-blended pseudo-fakes, labelled fakes, held-out identities.

A platform's uploads are overwhelmingly real, so every real face also appears as a self-blended fake
(:mod:`deepsift.detect.selfblend`); labelled fakes (moderator decisions, data sets the user owns)
join as they are. Both classes get the same augmentation (flips, JPEG, resolution, brightness), so
compression or scale can never tell them apart: only the blending traces can.

Train and validation sets are split by *group*: the person for a corpus of identities, the video for
the platform's own crops. Two photos of one person, or two frames of one video, are near-duplicates,
and a split by image would measure memory rather than detection. Training keeps the epoch that
separates held-out reals from their pseudo-fakes best and stops when that stops improving.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepsift.detect.architectures import build_detector_network
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.evaluation import VideoFaces
from deepsift.detect.preprocess import crops_to_tensor
from deepsift.detect.selfblend import recode_face_region, self_blend
from deepsift.errors import DeepsiftError
from deepsift.faces.crops import decode_crop
from deepsift.faces.detector import Landmarks

log = logging.getLogger(__name__)

MaskShape = Literal["landmarks", "box"]
"""How a pseudo-fake's blended region is shaped: a hull fitted to the five landmarks, or an ellipse
in the face box (the ablation, and the fallback for a crop whose landmarks were not found)."""


class TrainingDataError(DeepsiftError, ValueError):
    """The training data cannot make a detector (nothing to train on, too few groups to hold out)."""


@dataclass(frozen=True)
class FaceSample:
    """One face to train on: an encoded crop at the contract's size, and where it came from.

    ``group`` is the unit of the train/validation split (an identity, or a video when identities are
    unknown); ``unit`` is the file or video the crop belongs to, scored as one video when thresholds
    are calibrated. ``label`` is 1 only for a labelled fake; every real sample also trains as a
    pseudo-fake.
    """

    group: str
    unit: str
    crop: bytes
    label: int = 0
    landmarks: Landmarks | None = None
    source: str = ""


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 8
    """The most epochs; early stopping usually ends sooner."""
    batch_size: int = 32
    """Crops per optimiser step: half real faces, half their pseudo-fakes."""
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    validation_fraction: float = 0.2
    seed: int = 0
    max_steps: int | None = None
    """Stop after this many optimiser steps in total (for smoke runs); None trains every epoch."""
    patience: int = 2
    """Stop after this many epochs without a better held-out AUC."""
    pretrained: bool = True
    """Start from the architecture's ImageNet weights; False starts from random weights."""
    mask: MaskShape = "landmarks"
    freeze_batchnorm: bool = True
    """Keep the pretrained BatchNorm statistics: a few hundred studio photos would otherwise pull them
    towards one lighting and pose, and faces unlike those would score as fakes."""


@dataclass
class TrainingResult:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    train_groups: list[str] = field(default_factory=list)
    validation_groups: list[str] = field(default_factory=list)


def split_by_group(groups: list[str], validation_fraction: float, seed: int) -> set[str]:
    """The groups held out for validation: a stable hash decides, so a group never changes side.

    With at least two groups and a non-zero fraction, at least one is held out (the one with the
    lowest hash), so that small data sets still get a validation set.

    >>> sorted(split_by_group(["ann", "bob", "cy", "dee"], 0.5, seed=0)) == sorted(split_by_group(["dee", "cy", "bob", "ann"], 0.5, 0))
    True
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    ranked = sorted(
        (int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode()).digest()[:8], "big") / 2**64, group)
        for group in set(groups)
    )
    held_out = {group for position, group in ranked if position < validation_fraction}
    if not held_out and validation_fraction > 0 and len(ranked) >= 2:
        held_out.add(ranked[0][1])
    return held_out


@dataclass(eq=False)
class SelfBlendDataset(Dataset):
    """Samples decoded on access, each real one with its own pseudo-fake beside it.

    Item ``i`` is a list of (crop, label): a real face and the self-blend of that same degraded face,
    with the same flips and re-compression, so the pair differs only by the blend and a batch shows
    the network exactly that difference (as the SBI paper trains); a labelled fake comes alone. The
    rng is seeded by (seed, epoch, index): a run is reproducible and every epoch sees new blends.
    """

    samples: list[FaceSample]
    input_size: int
    seed: int
    mask: MaskShape = "landmarks"
    augment: bool = True
    """Degrade and re-code faces as capture and upload do (:func:`degrade_capture`, :func:`augment_face`);
    off for validation."""
    epoch: int = field(default=0, init=False)
    """Set by the training loop before each pass, so that every epoch draws new blends."""

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> list[tuple[np.ndarray, int]]:
        sample = self.samples[index]
        crop = decode_crop(sample.crop)
        if crop.shape[:2] != (self.input_size, self.input_size):
            raise ValueError(
                f"crop of {sample.unit} is {crop.shape[1]}x{crop.shape[0]}, the contract needs "
                f"{self.input_size}x{self.input_size}: extract faces with faces.crop_size = {self.input_size}"
            )
        rng = np.random.default_rng((self.seed, self.epoch, index))
        landmarks = sample.landmarks if self.mask == "landmarks" else None
        if self.augment:
            crop = degrade_capture(crop, rng)
            if rng.random() < 0.5:
                crop = recode_face_region(crop, rng, landmarks=landmarks)
        finish_seed = (self.seed, self.epoch, index, 1)
        if sample.label == 1:
            return [(self._finish(crop, finish_seed), 1)]
        fake, _ = self_blend(crop, rng, landmarks=landmarks)
        return [(self._finish(crop, finish_seed), 0), (self._finish(fake, finish_seed), 1)]

    def _finish(self, crop: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
        return augment_face(crop, np.random.default_rng(seed)) if self.augment else crop


def degrade_capture(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make a sharp photo look like a face in an upload: fewer pixels, softer optics, lossy coding.

    Applied before blending, to real faces and pseudo-fakes alike. Without it the starter corpus's
    studio photos are sharper than any video face, and a detector learns "soft face = fake".
    """
    side = crop.shape[0]
    if rng.random() < 0.6:
        small = max(16, round(side * rng.uniform(0.3, 0.9)))
        interpolation = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(2))]
        crop = cv2.resize(cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA), (side, side), interpolation=interpolation)
    if rng.random() < 0.3:
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        crop = _jpeg(crop, int(rng.integers(40, 95)))
    return crop


def augment_face(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What framing and uploads do to any face, real or fake: mirror, tilt and zoom, recolour, re-compress."""
    if rng.random() < 0.5:
        crop = np.ascontiguousarray(crop[:, ::-1])
    if rng.random() < 0.5:
        side = crop.shape[0]
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-12, 12), rng.uniform(0.9, 1.12))
        matrix[:, 2] += rng.uniform(-0.05, 0.05, size=2) * side
        crop = cv2.warpAffine(crop, matrix, (side, side), borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.4:
        hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
        hsv[..., 1] *= rng.uniform(0.6, 1.3)
        crop = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    if rng.random() < 0.1:
        crop = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.3:
        contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
        crop = cv2.convertScaleAbs(crop, alpha=contrast, beta=brightness)
    if rng.random() < 0.5:
        crop = _jpeg(crop, int(rng.integers(50, 96)))
    return crop


def _jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    return crop if decoded is None else decoded


def _collate(batch: list[list[tuple[np.ndarray, int]]]) -> tuple[np.ndarray, torch.Tensor]:
    pairs = [pair for item in batch for pair in item]
    crops = np.stack([crop for crop, _ in pairs])
    labels = torch.tensor([label for _, label in pairs], dtype=torch.float32)
    return crops, labels


def train_detector(
    samples: list[FaceSample],
    contract: PreprocessContract,
    settings: TrainingSettings,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainingResult:
    """Train ``contract.architecture`` on ``samples`` and return the best epoch's weights.

    Runs on the GPU when one is visible, else on the CPU. Validation is per crop on the held-out
    groups, each real crop against its own pseudo-fake (video-level figures are
    :mod:`deepsift.detect.evaluation`'s job).
    """
    train, validation, result = _split_samples(samples, settings)
    torch.manual_seed(settings.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = SelfBlendDataset(train, contract.input_size, settings.seed, settings.mask)
    loader = DataLoader(
        train_set,
        batch_size=max(1, settings.batch_size // 2),
        shuffle=True,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    network = build_detector_network(contract.architecture, pretrained=settings.pretrained)
    network = network.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # accepted at run time
    steps = _Steps.plan(network, settings, len(loader))
    loss_fn = nn.BCEWithLogitsLoss()
    best_auc, best_state = -1.0, None
    for epoch in range(settings.epochs):
        train_set.epoch = epoch
        _train_mode(network, settings)
        losses = steps.run_epoch(network, loader, lambda crops: _to_input(crops, contract, device), loss_fn)
        metrics = {"train_loss": float(np.mean(losses)), "steps": float(steps.taken)}
        metrics |= _validate(network, validation, contract, settings, loss_fn, device)
        result.history.append(metrics)
        log.info("epoch %d: %s", epoch, metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        auc = metrics.get("val_crop_auc", -metrics["val_loss"])
        if best_state is None or auc > best_auc:
            best_auc, best_state, result.best_epoch = auc, copy.deepcopy(network.state_dict()), epoch
        if epoch - result.best_epoch >= settings.patience:
            log.info("early stop after epoch %d: best held-out epoch was %d", epoch, result.best_epoch)
            break
        if steps.exhausted:
            break
    assert best_state is not None
    result.state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in best_state.items()}
    return result


def _split_samples(
    samples: list[FaceSample], settings: TrainingSettings
) -> tuple[list[FaceSample], list[FaceSample], TrainingResult]:
    """Training and validation samples split by group, and a result naming the groups on each side.

    Fails with :class:`TrainingDataError` when the split cannot hold some groups out and train on others.
    """
    if not samples:
        raise TrainingDataError("no training faces: extract faces first, give a corpus, or check the filters")
    groups = sorted({sample.group for sample in samples})
    held_out = split_by_group(groups, settings.validation_fraction, settings.seed)
    if len(groups) < 2 or len(held_out) == len(groups):
        raise TrainingDataError(
            f"training needs faces of at least 2 people or videos, to hold some out for validation; got {len(groups)}"
        )
    if not held_out:
        raise TrainingDataError("validation_fraction must be above 0: early stopping needs held-out faces")
    train = [sample for sample in samples if sample.group not in held_out]
    validation = [sample for sample in samples if sample.group in held_out]
    result = TrainingResult(
        state_dict={}, train_groups=sorted({s.group for s in train}), validation_groups=sorted(held_out & set(groups))
    )
    return train, validation, result


def _train_mode(network: nn.Module, settings: TrainingSettings) -> None:
    """Training mode, except the pretrained BatchNorm layers when ``freeze_batchnorm`` keeps their statistics."""
    network.train()
    if settings.freeze_batchnorm and settings.pretrained:
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):  # noqa: SLF001 - base of every batch norm
                module.eval()


@dataclass
class _Steps:
    """The optimiser, its one-cycle schedule, and the step budget across epochs (``max_steps``)."""

    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    total: int
    """Steps the schedule spans: every epoch's batches, or ``max_steps`` when fewer."""
    limit: int | None
    taken: int = 0

    @classmethod
    def plan(cls, network: nn.Module, settings: TrainingSettings, batches_per_epoch: int) -> _Steps:
        """AdamW with weight decay under a one-cycle schedule over the run's steps."""
        optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        total = settings.epochs * batches_per_epoch
        if settings.max_steps is not None:
            total = min(total, settings.max_steps)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=settings.learning_rate, total_steps=max(1, total), pct_start=0.1
        )
        return cls(optimiser, schedule, total, settings.max_steps)

    @property
    def exhausted(self) -> bool:
        """Whether ``max_steps`` steps have been taken."""
        return self.limit is not None and self.taken >= self.limit

    def run_epoch(
        self,
        network: nn.Module,
        loader: DataLoader,
        to_input: Callable[[np.ndarray], torch.Tensor],
        loss_fn: nn.Module,
    ) -> list[float]:
        """One pass over ``loader`` (cut short when the step budget runs out); the loss of each step."""
        losses = []
        for crops, labels in loader:
            logits = network(to_input(crops)).squeeze(1)
            loss = loss_fn(logits, labels.to(logits.device))
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            self.taken += 1
            if self.taken <= self.total - 1:  # OneCycleLR refuses a step past ``total``; it took its first when built
                self.schedule.step()
            losses.append(loss.item())
            if self.exhausted:
                break
        return losses


def _to_input(crops: np.ndarray, contract: PreprocessContract, device: torch.device) -> torch.Tensor:
    return crops_to_tensor(crops, contract, device).contiguous(memory_format=torch.channels_last)


def _validate(
    network: nn.Module,
    samples: list[FaceSample],
    contract: PreprocessContract,
    settings: TrainingSettings,
    loss_fn: nn.Module,
    device: torch.device,
) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    dataset = SelfBlendDataset(samples, contract.input_size, settings.seed + 1, settings.mask, augment=False)
    loader = DataLoader(dataset, batch_size=max(1, settings.batch_size // 2), collate_fn=_collate)
    network.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for crops, batch_labels in loader:
            logits.append(network(_to_input(crops, contract, device)).squeeze(1).float().cpu())
            labels.append(batch_labels)
    all_logits, all_labels = torch.cat(logits), torch.cat(labels)
    metrics = {"val_loss": float(loss_fn(all_logits, all_labels))}
    if len(set(all_labels.tolist())) == 2:
        metrics["val_crop_auc"] = float(roc_auc_score(all_labels.numpy(), torch.sigmoid(all_logits).numpy()))
    return metrics


def held_out_videos(
    samples: list[FaceSample], groups: set[str] | list[str], seed: int, mask: MaskShape = "landmarks"
) -> list[VideoFaces]:
    """Each held-out unit (a photo or a video) as one video, and again as its self-blended copy.

    The real ones calibrate the thresholds (their scores set the false-positive rates); the copies
    make the set two-class so that it can be measured. Frame indices are the crops' order.
    """
    by_unit: dict[str, list[FaceSample]] = defaultdict(list)
    for sample in samples:
        if sample.group in groups:
            by_unit[sample.unit].append(sample)
    videos = []
    for unit, unit_samples in sorted(by_unit.items()):
        crops = np.stack([decode_crop(sample.crop) for sample in unit_samples])
        frames = np.arange(len(unit_samples))
        label = max(sample.label for sample in unit_samples)
        videos.append(VideoFaces(unit, label, crops, frames))
        if label == 0:
            rng = np.random.default_rng((seed, len(videos)))
            blended = np.stack(
                [
                    self_blend(crop, rng, landmarks=sample.landmarks if mask == "landmarks" else None)[0]
                    for crop, sample in zip(crops, unit_samples, strict=True)
                ]
            )
            videos.append(VideoFaces(f"{unit}#selfblend", 1, blended, frames))
    return videos
