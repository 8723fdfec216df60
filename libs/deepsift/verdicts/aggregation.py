"""Video scores from face scores: the named aggregation rules a model's contract can choose.

Each rule takes the face scores of one video with the frame each face came from, and returns one
probability that the video is manipulated. Rules are registered by name with :func:`aggregation_rule`
so the contract's ``aggregation`` field selects one; an unknown name is an error listing the known.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepsift.errors import DeepsiftError

AggregationRule = Callable[[np.ndarray, np.ndarray], float]
"""``rule(scores, frame_indices) -> video score``; both arrays have one entry per face, at least one."""

_RULES: dict[str, AggregationRule] = {}

TOP_K = 8
CONFIDENT_HIGH = 0.8
CONFIDENT_LOW = 0.2
CONFIDENT_MIN_FACES = 11
"""The DFDC winner's rule was tuned on 32 frames a video: more than 11 confident fakes (and more than
n / 2.5) make a video fake; more than 90% confident reals make it real."""


class UnknownAggregationError(DeepsiftError, ValueError):
    """The contract names an aggregation rule that does not exist."""


def aggregation_rule(name: str) -> Callable[[AggregationRule], AggregationRule]:
    """Register ``rule`` under ``name``."""

    def register(rule: AggregationRule) -> AggregationRule:
        _RULES[name] = rule
        return rule

    return register


def aggregate(name: str, scores: np.ndarray, frame_indices: np.ndarray) -> float:
    """Apply the rule called ``name``; scores must be non-empty (no faces is a reason, not a score).

    >>> aggregate("max", np.array([0.1, 0.9]), np.array([0, 1]))
    0.9
    """
    rule = _RULES[check_aggregation(name)]
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("cannot aggregate zero face scores: a video without faces has reason no_face")
    return float(rule(scores, np.asarray(frame_indices)))


def known_aggregations() -> list[str]:
    """The names a contract's ``aggregation`` may take, sorted."""
    return sorted(_RULES)


def check_aggregation(name: str) -> str:
    """``name`` when a rule has it, else :class:`UnknownAggregationError` listing the known names.

    >>> check_aggregation("median")
    Traceback (most recent call last):
    ...
    deepsift.verdicts.aggregation.UnknownAggregationError: unknown aggregation 'median'; known: confident, max, max_face_per_frame_mean, mean, topk_mean
    """
    if name not in _RULES:
        raise UnknownAggregationError(f"unknown aggregation {name!r}; known: {', '.join(known_aggregations())}")
    return name


@aggregation_rule("mean")
def _mean(scores: np.ndarray, frames: np.ndarray) -> float:
    return scores.mean()


@aggregation_rule("max")
def _max(scores: np.ndarray, frames: np.ndarray) -> float:
    return scores.max()


@aggregation_rule("topk_mean")
def _topk_mean(scores: np.ndarray, frames: np.ndarray) -> float:
    """Mean of the ``TOP_K`` highest face scores: one convincing frame is not enough, a few are."""
    return np.sort(scores)[-TOP_K:].mean()


@aggregation_rule("confident")
def _confident(scores: np.ndarray, frames: np.ndarray) -> float:
    """The DFDC winner's confident strategy: trust a confident majority, else the mean."""
    confident_fake = scores[scores > CONFIDENT_HIGH]
    if confident_fake.size > scores.size / 2.5 and confident_fake.size > CONFIDENT_MIN_FACES:
        return confident_fake.mean()
    confident_real = scores[scores < CONFIDENT_LOW]
    if confident_real.size > 0.9 * scores.size:
        return confident_real.mean()
    return scores.mean()


@aggregation_rule("max_face_per_frame_mean")
def _max_face_per_frame_mean(scores: np.ndarray, frames: np.ndarray) -> float:
    """The most suspicious face of each frame, averaged over frames (a crowd does not dilute a fake)."""
    order = np.argsort(frames, kind="stable")
    _, starts = np.unique(frames[order], return_index=True)
    return np.maximum.reduceat(scores[order], starts).mean()
