"""Split metrics at a threshold (scikit-learn underneath; no database needed)."""

import numpy as np
import pytest

from training.metrics import split_metrics


def test_metrics_at_a_threshold_match_the_counts():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    probabilities = np.array([0.1, 0.6, 0.2, 0.9, 0.4, 0.7, 0.8, 0.3])

    metrics = split_metrics(labels, probabilities, loss=0.5, threshold=0.5)

    # Predicted positive: 0.6 (wrong), 0.9, 0.7, 0.8; missed: 0.4.
    assert metrics.confusion_matrix == ((3, 1), (1, 3))
    assert (metrics.rows, metrics.positives, metrics.threshold, metrics.loss) == (8, 4, 0.5, 0.5)
    assert metrics.accuracy == pytest.approx(6 / 8)
    assert metrics.precision == pytest.approx(3 / 4) and metrics.recall == pytest.approx(3 / 4)
    assert metrics.f1 == pytest.approx(3 / 4)
    # Ranking: of the 16 positive/negative pairs, only (0.4 vs 0.6) is out of order.
    assert metrics.roc_auc == pytest.approx(15 / 16)
    assert 0 < metrics.pr_auc <= 1
    assert metrics.as_dict()["confusion_matrix"] == [[3, 1], [1, 3]]


def test_a_threshold_is_inclusive():
    metrics = split_metrics(np.array([0, 1]), np.array([0.2, 0.5]), loss=0.1, threshold=0.5)

    assert metrics.confusion_matrix == ((1, 0), (0, 1))


def test_a_split_without_positives_has_no_ranking_metrics():
    metrics = split_metrics(np.array([0, 0, 0]), np.array([0.2, 0.7, 0.1]), loss=0.3, threshold=0.5)

    assert metrics.roc_auc is None and metrics.pr_auc is None
    assert (metrics.precision, metrics.recall, metrics.f1) == (0.0, 0.0, 0.0)
    assert metrics.confusion_matrix == ((2, 1), (0, 0))


def test_a_split_of_positives_only_has_pr_auc_but_no_roc_auc():
    metrics = split_metrics(np.array([1, 1]), np.array([0.2, 0.7]), loss=0.3, threshold=0.5)

    assert metrics.roc_auc is None
    assert metrics.pr_auc == pytest.approx(1.0)
    assert metrics.recall == pytest.approx(0.5)
