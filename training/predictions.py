"""A run's per-row predictions (``predictions.npz`` in its artifact folder): the
probability the best epoch's weights give every val and test row, so that error analysis
reads them back instead of training again. No ORM here: the run's service writes the
file and records it as an artifact; ``training.selectors`` reads it.

The file is a plain ``.npz`` (no pickled objects), one entry per column and a row per
val or test member of the dataset version, in the version's row order:

- ``aid`` int64, ``split`` text (``val`` / ``test``), ``label`` int8 (the version's
  label, i.e. the consensus when it was frozen);
- ``probability`` float32;
- ``predicted`` bool: ``probability >= threshold`` decided on the trainer's float64
  probabilities, so that the mistakes are exactly the ones its confusion matrix counts
  (a float32 probability within rounding of the threshold could fall on the other side);
- ``threshold`` float64 (a scalar): the run's decision threshold.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.trainer import TrainingResult

PREDICTIONS_PATH = "predictions.npz"
PREDICTED_SPLITS = ("val", "test")
COLUMNS = ("aid", "split", "label", "probability", "predicted", "threshold")


class PredictionsFileError(ValueError):
    """The file is not a predictions file (missing columns, mismatched lengths)."""


@dataclass(frozen=True)
class Predictions:
    aid: np.ndarray  # int64 (n,)
    split: np.ndarray  # '<U5' (n,)
    label: np.ndarray  # int8 (n,)
    probability: np.ndarray  # float32 (n,)
    predicted: np.ndarray  # bool (n,)
    threshold: float

    def __len__(self) -> int:
        return len(self.aid)


def predictions_from_result(aids: np.ndarray, labels: np.ndarray, splits: np.ndarray,
                            result: TrainingResult) -> Predictions:
    """The val and test rows of the version's arrays (``aids``, ``labels``, ``splits``
    as ``train`` received them) with ``result``'s probabilities at its threshold."""
    if result.threshold is None:
        raise ValueError("a cancelled training result has no predictions")
    masks = [splits == split for split in PREDICTED_SPLITS]
    probabilities = [np.asarray(result.predictions[split], dtype=np.float64) for split in PREDICTED_SPLITS]
    for split, mask, values in zip(PREDICTED_SPLITS, masks, probabilities):
        if len(values) != int(mask.sum()):
            raise ValueError(f"{len(values)} {split} probabilities for {int(mask.sum())} {split} rows")
    exact = np.concatenate(probabilities)
    return Predictions(
        aid=np.concatenate([aids[mask] for mask in masks]).astype(np.int64),
        split=np.concatenate([splits[mask] for mask in masks]).astype("<U5"),
        label=np.concatenate([labels[mask] for mask in masks]).astype(np.int8),
        probability=exact.astype(np.float32),
        predicted=exact >= result.threshold,
        threshold=float(result.threshold),
    )


def predictions_write(path: Path, predictions: Predictions) -> None:
    # A temporary name first, so a reader never sees half a file.
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.savez_compressed(
            handle, aid=predictions.aid, split=predictions.split, label=predictions.label,
            probability=predictions.probability, predicted=predictions.predicted,
            threshold=np.float64(predictions.threshold),
        )
    partial.replace(path)


def predictions_read(path: Path) -> Predictions:
    """The file at ``path``; ``PredictionsFileError`` when it is not one, ``OSError``
    when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [column for column in COLUMNS if column not in data.files]
            if missing:
                raise PredictionsFileError(f"{path.name} lacks the column(s) {', '.join(missing)}")
            columns = {column: data[column] for column in COLUMNS}
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, PredictionsFileError):
            raise
        raise PredictionsFileError(f"{path.name} is not a readable .npz file ({error})") from None
    rows = len(columns["aid"])
    if any(columns[column].shape != (rows,) for column in COLUMNS[:-1]) or columns["threshold"].shape != ():
        raise PredictionsFileError(f"{path.name}: the columns do not hold one value per row")
    return Predictions(
        aid=columns["aid"].astype(np.int64), split=columns["split"].astype("<U5"),
        label=columns["label"].astype(np.int8), probability=columns["probability"].astype(np.float32),
        predicted=columns["predicted"].astype(bool), threshold=float(columns["threshold"]),
    )
