"""The promotion rule: may the challenger take the champion alias, and why (with both metric values).

Two versions are compared only when both were evaluated on the same evaluation set and both carry
the metric; the challenger must then be at least as good. A refusal can be overridden (``force``),
which is tagged on the promoted version. This module decides; the registry moves the alias.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepsift.registry.versions import ModelVersionInfo

PROMOTION_TAG = "deepsift.promotion"
FORCED_PROMOTION_TAG = "deepsift.promoted_by_force"


@dataclass(frozen=True)
class PromotionDecision:
    """What :meth:`DetectorRegistry.promote` did and why; ``reason`` quotes both metric values."""

    promoted: bool
    forced: bool
    reason: str
    metric: str
    challenger_version: int
    champion_version: int | None
    """The version that held the champion alias before the decision."""
    challenger_value: float | None
    champion_value: float | None


def decide_promotion(
    new: ModelVersionInfo,
    old: ModelVersionInfo | None,
    champion: str,
    metric: str,
    *,
    higher_is_better: bool,
    force: bool,
) -> PromotionDecision:
    """Whether ``new`` (the challenger) replaces ``old`` (the holder of ``@champion``, None if none).

    With no champion yet, the challenger becomes champion; a version already holding the alias is
    not promoted again.
    """
    promoted, forced = True, False
    if old is None:
        reason = f"no @{champion} yet: v{new.version} becomes @{champion}"
    elif old.version == new.version:
        promoted, reason = False, f"v{new.version} already holds @{champion}"
    else:
        acceptable, comparison = _compare(new, old, metric, higher_is_better)
        if acceptable:
            reason = comparison
        elif force:
            forced, reason = True, f"forced although {comparison}"
        else:
            promoted, reason = False, f"refused: {comparison}"
    return PromotionDecision(
        promoted=promoted,
        forced=forced,
        reason=reason,
        metric=metric,
        challenger_version=new.version,
        champion_version=old.version if old else None,
        challenger_value=new.metrics.get(metric),
        champion_value=old.metrics.get(metric) if old else None,
    )


def _compare(
    new: ModelVersionInfo, old: ModelVersionInfo, metric: str, higher_is_better: bool
) -> tuple[bool, str]:
    """Whether the challenger may replace the champion, and why (quoting both values)."""
    if new.eval_set_id is None or new.eval_set_id != old.eval_set_id:
        return False, (
            f"v{new.version} and v{old.version} were evaluated on different sets "
            f"({new.eval_set_id or 'unknown'} vs {old.eval_set_id or 'unknown'})"
        )
    new_value, old_value = new.metrics.get(metric), old.metrics.get(metric)
    if new_value is None or old_value is None:
        missing = ", ".join(f"v{v.version}" for v, x in ((new, new_value), (old, old_value)) if x is None)
        return False, f"{metric} is not logged for {missing}"
    at_least_as_good = new_value >= old_value if higher_is_better else new_value <= old_value
    relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
        (higher_is_better, at_least_as_good)
    ]
    return at_least_as_good, (
        f"challenger v{new.version} {metric} {new_value:.4f} {relation} "
        f"champion v{old.version} {metric} {old_value:.4f} on eval set {new.eval_set_id}"
    )
