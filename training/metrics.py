"""Binary classification metrics at a decision threshold, from scikit-learn.

Shared by the trainer (val each epoch, val and test at the end) and, later, evaluation
jobs: numpy in, plain values out, no torch and no ORM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


@dataclass(frozen=True)
class SplitMetrics:
    """A split's metrics at a decision threshold (scikit-learn's definitions).

    ``loss`` is the unweighted binary cross-entropy, so that it compares across class
    weightings. Precision, recall and F1 are 0 where undefined (no predicted or no
    actual positives), as scikit-learn's ``zero_division=0``; ROC-AUC is ``None`` on a
    split with one class only and PR-AUC (average precision) ``None`` with no positives.
    ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]``.
    """

    rows: int
    positives: int
    threshold: float
    loss: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    pr_auc: float | None
    confusion_matrix: tuple[tuple[int, int], tuple[int, int]]

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["confusion_matrix"] = [list(row) for row in self.confusion_matrix]
        return values


def best_f1_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """A probability threshold (predict positive at or above it) that maximises F1 on
    these rows, None when there is no positive. Among the scores that reach the best F1
    the lowest is taken, then moved halfway down to the next lower score: the same
    predictions on these rows, and a margin on both sides for unseen ones."""
    if len(labels) == 0 or not labels.any():
        return None
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    # The curve's last point (precision 1, recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    best = int(np.argmax(f1))  # thresholds ascend, distinct: the first best is the lowest
    if best == 0:
        return float(thresholds[0])
    return float((thresholds[best] + thresholds[best - 1]) / 2)


def split_metrics(labels: np.ndarray, probabilities: np.ndarray, loss: float, threshold: float) -> SplitMetrics:
    predicted = (probabilities >= threshold).astype(np.int64)
    (tn, fp), (fn, tp) = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    both_classes = len(np.unique(labels)) == 2
    return SplitMetrics(
        rows=len(labels),
        positives=int(labels.sum()),
        threshold=threshold,
        loss=loss,
        accuracy=float(accuracy_score(labels, predicted)),
        precision=float(precision_score(labels, predicted, zero_division=0)),
        recall=float(recall_score(labels, predicted, zero_division=0)),
        f1=float(f1_score(labels, predicted, zero_division=0)),
        roc_auc=float(roc_auc_score(labels, probabilities)) if both_classes else None,
        pr_auc=float(average_precision_score(labels, probabilities)) if labels.any() else None,
        confusion_matrix=((tn, fp), (fn, tp)),
    )


__all__ = ["SplitMetrics", "best_f1_threshold", "split_metrics"]
