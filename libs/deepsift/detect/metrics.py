"""Video-level evaluation of a detector: ranking, calibration, and accuracy at the model's thresholds.

Labels are 1 for manipulated and 0 for authentic; a score at or above a threshold is a positive,
the same rule the verdict stage applies with :class:`~deepsift.detect.contract.Thresholds`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from deepsift.detect.contract import Thresholds

CALIBRATION_BINS = 10


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, thresholds: Thresholds) -> dict[str, float]:
    """AUC, average precision, EER, calibration error and accuracy/FPR/TPR at both thresholds.

    Keys: ``auc``, ``ap``, ``eer``, ``ece``, ``accuracy_suspicious``, ``accuracy_manipulated``,
    ``fpr_suspicious``, ``tpr_suspicious``, ``fpr_manipulated``, ``tpr_manipulated``, ``n_pos``,
    ``n_neg`` (all floats, ready for ``mlflow.log_metrics``).

    >>> m = evaluate_scores(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), Thresholds())
    >>> m["auc"], m["accuracy_suspicious"]
    (0.75, 0.75)
    """
    labels, scores = _checked(labels, scores)
    metrics = {
        "auc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "eer": equal_error_rate(labels, scores),
        "ece": expected_calibration_error(labels, scores),
        "n_pos": float(labels.sum()),
        "n_neg": float((labels == 0).sum()),
    }
    for name in ("suspicious", "manipulated"):
        predicted = scores >= getattr(thresholds, name)
        metrics[f"accuracy_{name}"] = float((predicted == labels.astype(bool)).mean())
        metrics[f"fpr_{name}"] = float(predicted[labels == 0].mean())
        metrics[f"tpr_{name}"] = float(predicted[labels == 1].mean())
    return metrics


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """The rate where false positives equal false negatives, interpolated along the ROC curve.

    >>> equal_error_rate(np.array([0, 1]), np.array([0.2, 0.9]))
    0.0
    """
    labels, scores = _checked(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    gap = (1.0 - tpr) - fpr  # falls from 1 (nothing flagged) to -1 (everything flagged)
    crossing = int(np.argmax(gap <= 0))
    if gap[crossing] == 0:
        return float(fpr[crossing])
    before, after = gap[crossing - 1], gap[crossing]
    t = before / (before - after)
    return float(fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1]))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |fraction of fakes - mean score| over equal-width score bins, weighted by bin size.

    >>> expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0]))
    0.0
    """
    labels, scores = _checked(labels, scores)
    bin_index = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(bin_index):
        in_bin = bin_index == b
        error += in_bin.mean() * abs(labels[in_bin].mean() - scores[in_bin].mean())
    return float(error)


def thresholds_for_fpr(
    labels: np.ndarray,
    scores: np.ndarray,
    suspicious_fpr: float = 0.01,
    manipulated_fpr: float = 0.001,
) -> Thresholds:
    """The lowest thresholds whose false-positive rate on this set's negatives is within each target.

    With ``k = floor(target * n_neg)`` negatives allowed at or above it, the threshold is the next
    float above the (k+1)-th highest negative score (capped at 1.0, where negatives scored 1.0 stay
    flagged). With few negatives (``n_neg < 1 / target``) ``k`` is 0, so the threshold sits just
    above the highest negative: the target cannot be measured on such a set, and the real rate is
    only known to be below about ``1 / n_neg``. Use thousands of negatives for a 0.1 % target.

    >>> thresholds_for_fpr(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9]), 0.5, 0.0).suspicious
    0.20000000000000004
    """
    if not (0.0 <= manipulated_fpr <= suspicious_fpr <= 1.0):
        raise ValueError(
            f"need 0 <= manipulated_fpr <= suspicious_fpr <= 1, got {manipulated_fpr}, {suspicious_fpr}"
        )
    labels, scores = _checked(labels, scores)
    negatives = np.sort(scores[labels == 0])[::-1].astype(np.float64)

    def lowest_threshold(target: float) -> float:
        allowed = int(np.floor(target * negatives.size + 1e-9))
        if allowed >= negatives.size:
            return 0.0
        return float(min(1.0, np.nextafter(negatives[allowed], np.inf)))

    return Thresholds(suspicious=lowest_threshold(suspicious_fpr), manipulated=lowest_threshold(manipulated_fpr))


def plot_roc(labels: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    """Write the ROC curve (with its AUC) as a PNG at ``path`` and return the path."""
    labels, scores = _checked(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, label=f"AUC {roc_auc_score(labels, scores):.3f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_score_histogram(labels: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    """Write overlaid score histograms of authentic and manipulated videos as a PNG at ``path``."""
    labels, scores = _checked(labels, scores)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    edges = np.linspace(0.0, 1.0, 41).tolist()
    axes.hist(scores[labels == 0], bins=edges, alpha=0.6, label=f"authentic (n={int((labels == 0).sum())})")
    axes.hist(scores[labels == 1], bins=edges, alpha=0.6, label=f"manipulated (n={int(labels.sum())})")
    axes.set(xlabel="score", ylabel="videos", title="Score distribution")
    axes.legend()
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return path


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and scores as finite floats in [0, 1], both classes present."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {labels.shape} and {scores.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (authentic) or 1 (manipulated), got values {np.unique(labels)}")
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise ValueError("scores must be finite probabilities in [0, 1]")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        present = "manipulated" if n_pos else "authentic"
        raise ValueError(
            f"need both authentic (0) and manipulated (1) labels; all {labels.size} are {present}"
        )
    return labels.astype(np.int64), scores
