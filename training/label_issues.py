"""Out-of-fold predicted probabilities and the label issues cleanlab ranks from them:
plain numpy/torch, no ORM (``training.services.label_issues`` runs it as a job).

``out_of_fold_probabilities`` splits ALL rows it is given (a dataset version's train,
val and test alike) into ``folds`` stratified folds (scikit-learn's
``StratifiedKFold``, shuffled with the config's seed). For each fold a model of the
config is trained (``trainer.train``) on the other folds and predicts the held-out
one, so every row gets a probability from a model that never saw its label.

Early stopping: a stratified 20% of the training folds is carved off as the ``val``
split (seeded), so each fold's model stops and keeps its best epoch as a run would;
when a class has too few rows in the training folds for that (fewer than
``MIN_CLASS_ROWS_FOR_VAL``), the fold trains without val (the trainer then keeps the last
epoch). The held-out fold is the trainer's ``test`` split: its probabilities are the
trainer's ``predictions["test"]``, in the fold's row order.

``rank_label_issues`` hands the probabilities to cleanlab 2.9: the rows
``cleanlab.filter.find_label_issues`` flags (confident learning, pruned by noise rate),
ranked by self-confidence (the out-of-fold probability of the given label: lowest
first), each with its ``cleanlab.rank.get_label_quality_scores`` score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.model_selection import StratifiedKFold, train_test_split

from training.architectures import TrainingConfig
from training.trainer import TrainingArrays, TrainingDataError, TrainingResult, train

#: Share of the training folds kept aside as each fold's val split (early stopping).
VAL_SHARE = 0.2
#: Below this many rows of a class in the training folds, a fold trains without val.
MIN_CLASS_ROWS_FOR_VAL = 5
#: How cleanlab ranks the issues it finds (lowest probability of the given label first).
RANKED_BY = "self_confidence"


@dataclass(frozen=True)
class FoldDone:
    """What ``on_fold`` receives after each fold."""

    fold: int  # 1-based
    folds: int
    rows: int  # held-out rows predicted
    epochs_run: int
    best_epoch: int | None


@dataclass(frozen=True)
class OutOfFold:
    """``probabilities[i]``: P(positive) for row ``i`` from the model that did not train
    on it; None when ``should_stop`` stopped it (``folds_done`` finished before)."""

    probabilities: np.ndarray | None
    folds_done: int
    cancelled: bool


@dataclass(frozen=True)
class RankedIssues:
    """The flagged rows, most likely mislabeled first, with their quality scores."""

    indices: np.ndarray  # int, into the rows given
    label_quality: np.ndarray  # float, same order


def check_foldable(y: np.ndarray, folds: int) -> None:
    """``TrainingDataError`` unless each class has at least ``folds`` rows (every fold
    then holds both classes, and cleanlab needs both)."""
    labels = np.asarray(y).astype(np.int64)
    positives = int(np.count_nonzero(labels))
    negatives = len(labels) - positives
    if min(positives, negatives) < folds:
        raise TrainingDataError(
            f"{folds} folds need at least {folds} rows of each class (this data has {positives} positive "
            f"and {negatives} negative rows): lower the number of folds or use a larger dataset version"
        )


def _fold_splits(train_rows: np.ndarray, y: np.ndarray, held_out: np.ndarray, seed: int) -> np.ndarray:
    """The trainer's split names for every row: held out → test, the training folds →
    train, with a stratified val share when each class has enough rows."""
    splits = np.full(len(y), "", dtype="<U5")
    splits[held_out] = "test"
    training_labels = y[train_rows]
    if np.bincount(training_labels, minlength=2).min() >= MIN_CLASS_ROWS_FOR_VAL:
        fit_rows, val_rows = train_test_split(
            train_rows, test_size=VAL_SHARE, stratify=training_labels, random_state=seed
        )
        splits[fit_rows] = "train"
        splits[val_rows] = "val"
    else:
        splits[train_rows] = "train"
    return splits


def out_of_fold_probabilities(
    X: np.ndarray,
    y: np.ndarray,
    config: TrainingConfig,
    *,
    folds: int,
    on_fold: Callable[[FoldDone], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str | torch.device | None = None,
) -> OutOfFold:
    """See the module docstring. ``should_stop`` is passed to the trainer (checked before
    every batch) and asked between folds; ``on_fold`` is called after each fold.
    Raises ``TrainingDataError`` for unusable data (too few rows of a class)."""
    X = np.asarray(X)
    labels = np.asarray(y).astype(np.int64)
    check_foldable(labels, folds)
    seed = config["seed"]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probabilities = np.full(len(labels), np.nan, dtype=np.float64)
    for fold, (train_rows, held_out) in enumerate(splitter.split(X, labels), start=1):
        if should_stop is not None and should_stop():
            return OutOfFold(probabilities=None, folds_done=fold - 1, cancelled=True)
        splits = _fold_splits(train_rows, labels, held_out, seed)
        result: TrainingResult = train(
            TrainingArrays(X=X, y=labels, splits=splits), config, should_stop=should_stop, device=device
        )
        if result.cancelled:
            return OutOfFold(probabilities=None, folds_done=fold - 1, cancelled=True)
        # The trainer's test predictions are in the order of the test rows: held_out is sorted.
        probabilities[held_out] = result.predictions["test"]
        if on_fold is not None:
            on_fold(FoldDone(fold=fold, folds=folds, rows=len(held_out), epochs_run=result.epochs_run,
                             best_epoch=result.best_epoch))
    return OutOfFold(probabilities=probabilities, folds_done=folds, cancelled=False)


def rank_label_issues(y: np.ndarray, probabilities: np.ndarray) -> RankedIssues:
    """The rows cleanlab flags as likely mislabeled, ranked (see the module docstring)."""
    labels = np.asarray(y).astype(np.int64)
    positive = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    pred_probs = np.column_stack([1.0 - positive, positive])
    # n_jobs=1: a Celery worker child is a daemon process, which may not start a pool.
    indices = find_label_issues(labels, pred_probs, return_indices_ranked_by=RANKED_BY, n_jobs=1)
    quality = get_label_quality_scores(labels, pred_probs, method=RANKED_BY)
    indices = np.asarray(indices, dtype=np.int64)
    return RankedIssues(indices=indices, label_quality=quality[indices])


__all__ = [
    "FoldDone",
    "OutOfFold",
    "RankedIssues",
    "check_foldable",
    "out_of_fold_probabilities",
    "rank_label_issues",
]
