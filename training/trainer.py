"""Train a binary classifier on in-memory arrays: plain torch, no ORM.

``train(arrays, config)`` takes the rows of a dataset version as numpy arrays (the
``DatasetArrays`` that ``datasets.selectors.dataset_version_arrays`` returns fits as is:
anything with ``X``, ``y`` and ``splits`` does) and a ``TrainingConfig`` from
``architectures.resolve_config``. It trains on the ``train`` split, evaluates ``val``
after every epoch (reported through ``on_epoch``), stops early on the chosen metric and
restores the best epoch's weights, picks the decision threshold (fixed, or the one that
maximises F1 on val), and evaluates ``val`` and ``test`` with it. A service around it
reads the version, logs each ``EpochMetrics`` into the run, saves ``state_dict`` and
passes ``should_stop`` to honour a cancel at the next batch boundary.

Reproducibility: python's ``random``, numpy and torch are seeded from the config's seed
and, on CPU, ``torch.use_deterministic_algorithms(True)`` is on while training, so two
CPU runs with the same seed, data and thread count give bit-identical weights and
metrics. On CUDA results may differ in the last bits (``TrainingResult.deterministic``).

Speed: the splits are moved to the device once; a batch is an index slice of a
per-epoch permutation (no DataLoader); the epoch's loss is summed on the device and
read once per epoch, so the GPU is not synchronised at every batch.
"""

from __future__ import annotations

import copy
import math
import platform
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from training.architectures import PLATEAU_FACTOR, PLATEAU_PATIENCE, TrainingConfig
from training.metrics import SplitMetrics, best_f1_threshold, split_metrics

SPLITS = ("train", "val", "test")
# Rows per forward pass when evaluating: bounds memory on large splits, and large
# enough that a split of 100k rows takes a couple of passes.
EVALUATION_BATCH_ROWS = 65536
# Loss is minimised, the others maximised.
MINIMISED_METRICS = frozenset({"val_loss"})


class TrainingError(Exception):
    """Training could not run or could not finish; the message says why."""


class TrainingDataError(TrainingError, ValueError):
    """The arrays are unusable (shapes, labels, splits, an empty train split)."""


class TrainingDiverged(TrainingError):
    """The training loss became NaN or infinite (usually a learning rate too high)."""


class TrainingArraysLike(Protocol):
    X: np.ndarray  # float32 (n, d)
    y: np.ndarray  # (n,) 0/1
    splits: np.ndarray  # (n,) "train" / "val" / "test"


@dataclass(frozen=True)
class TrainingArrays:
    """The input of ``train`` when it does not come from ``dataset_version_arrays``."""

    X: np.ndarray
    y: np.ndarray
    splits: np.ndarray


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch, as ``on_epoch`` receives it. ``train_loss`` is the (class-weighted)
    loss the optimiser minimised, averaged over the epoch's rows; the val values are
    measured after the epoch, F1 and accuracy at the epoch's decision threshold (the
    fixed one, or with ``max_val_f1`` the one that maximises this epoch's val F1).
    ``learning_rate`` is the rate the epoch trained at; ``epoch_seconds`` runs from the
    epoch's first batch to the end of its val evaluation. Val values are ``None`` when
    undefined (no val rows; ROC-AUC on a val split with one class only)."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_f1: float | None
    val_accuracy: float | None
    val_roc_auc: float | None
    learning_rate: float
    epoch_seconds: float

    def metric_values(self) -> dict[str, float]:
        """The defined metrics keyed by name (no ``epoch``): one metric batch for the run."""
        return {key: value for key, value in asdict(self).items() if key != "epoch" and value is not None}


@dataclass
class TrainingResult:
    """What ``train`` returns: the history, and unless cancelled the best epoch's
    weights, the decision threshold and the final val and test metrics at it."""

    config: TrainingConfig
    cancelled: bool
    history: list[EpochMetrics]
    # The epoch whose weights ``state_dict`` holds (1-based); None when cancelled.
    best_epoch: int | None
    stopped_early: bool
    # The metric that chose the best epoch (None without val rows: the last epoch is kept).
    early_stopping_metric: str | None
    threshold: float | None
    val: SplitMetrics | None
    test: SplitMetrics | None
    # On the CPU, ready for ``torch.save``; None when cancelled.
    state_dict: dict[str, torch.Tensor] | None
    input_dimensions: int
    split_rows: dict[str, int]
    device: str
    device_name: str
    deterministic: bool
    duration_seconds: float
    # Fallbacks taken, in words, for the run's log.
    notes: list[str] = field(default_factory=list)
    # Probabilities (float64) at the best epoch's weights, for "val" and "test": one per
    # row of that split, in the order its rows have in the input arrays (so
    # ``aids[splits == "test"]`` names them). Empty when cancelled; an empty split's is empty.
    predictions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def final_metrics(self) -> dict[str, float]:
        """``val_f1``, ``test_roc_auc``, ...: the defined final scalars, flat."""
        flat: dict[str, float] = {}
        for split, metrics in (("val", self.val), ("test", self.test)):
            if metrics is None:
                continue
            for key in ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"):
                value = getattr(metrics, key)
                if value is not None:
                    flat[f"{split}_{key}"] = value
        return flat


# --- data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Split:
    X: torch.Tensor  # on the device
    y: torch.Tensor  # float32 on the device
    labels: np.ndarray  # int64 on the CPU, for scikit-learn

    @property
    def rows(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> int:
        return len(np.unique(self.labels))


def _check_arrays(arrays: TrainingArraysLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, splits = np.asarray(arrays.X), np.asarray(arrays.y), np.asarray(arrays.splits)
    if X.ndim != 2 or X.shape[1] == 0:
        raise TrainingDataError(f"X must be a 2-D array with at least one column (got shape {X.shape})")
    if y.shape != (len(X),) or splits.shape != (len(X),):
        raise TrainingDataError(
            f"y and splits must hold one value per row of X ({len(X)} rows; got {y.shape} and {splits.shape})"
        )
    if not np.isin(y, (0, 1)).all():
        raise TrainingDataError("y must hold only 0 and 1")
    unknown = sorted(set(np.unique(splits).tolist()) - set(SPLITS))
    if unknown:
        raise TrainingDataError(f"unknown split names {unknown} (expected {', '.join(SPLITS)})")
    if not np.issubdtype(X.dtype, np.floating) or not np.isfinite(X).all():
        raise TrainingDataError("X must hold finite floating-point values")
    return X, y, splits


def _to_device(X: np.ndarray, y: np.ndarray, device: torch.device) -> _Split:
    labels = y.astype(np.int64)
    return _Split(
        X=torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device),
        y=torch.from_numpy(labels.astype(np.float32)).to(device),
        labels=labels,
    )


# --- evaluation -------------------------------------------------------------------------


@torch.inference_mode()
def _evaluate(model: nn.Module, split: _Split) -> tuple[float, np.ndarray]:
    """(mean unweighted BCE, probabilities as float64) for every row of ``split``."""
    model.eval()
    logits = torch.cat([
        model(split.X[start:start + EVALUATION_BATCH_ROWS])
        for start in range(0, split.rows, EVALUATION_BATCH_ROWS)
    ])
    loss = functional.binary_cross_entropy_with_logits(logits, split.y).item()
    return loss, torch.sigmoid(logits).double().cpu().numpy()


# --- training ---------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model() or platform.machine() or "cpu"


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator, CUDA included


def class_weights(config: TrainingConfig, labels: np.ndarray) -> tuple[float, float] | None:
    """(negative, positive) row weights of the training loss for these train labels;
    None for an unweighted loss (also for ``balanced`` on a single-class split)."""
    mode = config["class_weighting"]
    if mode == "pos_weight":
        return 1.0, config["positive_weight"]
    if mode == "balanced":
        positives = int(np.count_nonzero(labels))
        negatives = len(labels) - positives
        if positives == 0 or negatives == 0:
            return None
        return len(labels) / (2 * negatives), len(labels) / (2 * positives)
    return None


def _optimizer(config: TrainingConfig, model: nn.Module) -> torch.optim.Optimizer:
    parameters, learning_rate, weight_decay = model.parameters(), config["learning_rate"], config["weight_decay"]
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=config["momentum"], weight_decay=weight_decay)
    if config["optimizer"] == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)


def _batch_bounds(rows: int, batch_size: int, *, avoid_single_row: bool) -> list[tuple[int, int]]:
    bounds = [(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]
    # Batch norm cannot normalise one row in training mode: fold a last lone row into
    # the batch before it.
    if avoid_single_row and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], rows)]
    return bounds


def _is_better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric in MINIMISED_METRICS else value > best


def train(
    arrays: TrainingArraysLike,
    config: TrainingConfig,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str | torch.device | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainingResult:
    """Train ``config``'s architecture on ``arrays`` (see the module docstring).

    ``on_epoch`` is called once per finished epoch; ``should_stop`` before every batch
    (a true answer ends training there: the result is ``cancelled`` with the finished
    epochs' history and no final metrics). ``device`` defaults to CUDA when available.
    ``clock`` (seconds) times the epochs. Raises ``TrainingDataError`` for unusable
    arrays and ``TrainingDiverged`` when the loss stops being finite.
    """
    X, y, splits = _check_arrays(arrays)
    torch_device = resolve_device(device)
    deterministic = torch_device.type == "cpu"
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    started = clock()
    try:
        # Process-wide switch: on only while this run trains, then as it was.
        torch.use_deterministic_algorithms(deterministic)
        _seed_everything(config["seed"])
        data = {name: _to_device(X[splits == name], y[splits == name], torch_device) for name in SPLITS}
        if data["train"].rows == 0:
            raise TrainingDataError("the train split is empty")
        model = config.build_model(X.shape[1]).to(torch_device)
        result = _fit(model, data, config, torch_device, deterministic, on_epoch, should_stop, clock)
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
    result.duration_seconds = clock() - started
    return result


def _fit(
    model: nn.Module,
    data: Mapping[str, _Split],
    config: TrainingConfig,
    device: torch.device,
    deterministic: bool,
    on_epoch: Callable[[EpochMetrics], None] | None,
    should_stop: Callable[[], bool] | None,
    clock: Callable[[], float],
) -> TrainingResult:
    train_split, val_split = data["train"], data["val"]
    notes: list[str] = []
    monitored: str | None = config["early_stopping_metric"]
    if val_split.rows == 0:
        monitored = None
        notes.append("the val split is empty: no early stopping, the last epoch is kept")
    elif monitored != "val_loss" and val_split.classes < 2:
        notes.append(f"{monitored} is undefined on a val split with one class: early stopping on val_loss")
        monitored = "val_loss"
    tune_threshold = config["threshold_mode"] == "max_val_f1"
    if tune_threshold and not val_split.labels.any():
        tune_threshold = False
        notes.append("threshold_mode=max_val_f1 needs positives in the val split: the fixed threshold is used")

    weights = class_weights(config, train_split.labels)
    if weights is None and config["class_weighting"] == "balanced":
        notes.append("class_weighting=balanced ignored: the train split holds one class only")
    row_weights = None
    if weights is not None:
        row_weights = torch.where(train_split.y > 0.5, weights[1], weights[0]).to(torch.float32)
    optimizer = _optimizer(config, model)
    scheduler: Any = None
    if config["scheduler"] == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    elif config["scheduler"] == "plateau" and monitored is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min" if monitored in MINIMISED_METRICS else "max",
            factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE,
        )
    has_batch_norm = any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())
    bounds = _batch_bounds(train_split.rows, config["batch_size"], avoid_single_row=has_batch_norm)
    if has_batch_norm and train_split.rows < 2:
        raise TrainingDataError("batch normalisation needs at least 2 train rows")
    # Shuffling has its own generator so that it does not depend on how many random
    # numbers the model's initialisation drew.
    shuffle = torch.Generator().manual_seed(config["seed"])
    patience = config["early_stopping_patience"]

    history: list[EpochMetrics] = []
    best_value: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    epochs_without_improvement = 0
    stopped_early = cancelled = False

    for epoch in range(1, config["epochs"] + 1):
        epoch_started = clock()
        learning_rate = optimizer.param_groups[0]["lr"]
        model.train()
        order = torch.randperm(train_split.rows, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        for start, end in bounds:
            if should_stop is not None and should_stop():
                cancelled = True
                break
            index = order[start:end]
            logits = model(train_split.X[index])
            loss = functional.binary_cross_entropy_with_logits(
                logits, train_split.y[index], weight=None if row_weights is None else row_weights[index]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * (end - start)
        if cancelled:
            break
        train_loss = loss_sum.item() / train_split.rows
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"the training loss is {train_loss} at epoch {epoch}: lower the learning rate "
                f"(now {config['learning_rate']:g}) or check the data"
            )

        val_metrics = None
        if val_split.rows:
            val_loss, probabilities = _evaluate(model, val_split)
            threshold = (best_f1_threshold(val_split.labels, probabilities) if tune_threshold else None)
            val_metrics = split_metrics(
                val_split.labels, probabilities, val_loss, config["threshold"] if threshold is None else threshold
            )
        epoch_seconds = clock() - epoch_started
        record = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_metrics.loss if val_metrics else None,
            val_f1=val_metrics.f1 if val_metrics else None,
            val_accuracy=val_metrics.accuracy if val_metrics else None,
            val_roc_auc=val_metrics.roc_auc if val_metrics else None,
            learning_rate=learning_rate,
            epoch_seconds=epoch_seconds,
        )
        history.append(record)

        monitored_value = getattr(record, monitored) if monitored is not None else None
        if monitored is None or _is_better(monitored_value, best_value, monitored):
            best_value, best_epoch, epochs_without_improvement = monitored_value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            epochs_without_improvement += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(monitored_value)
        elif scheduler is not None:
            scheduler.step()
        if on_epoch is not None:
            on_epoch(record)
        if monitored is not None and patience and epochs_without_improvement >= patience:
            stopped_early = epoch < config["epochs"]
            break

    result = TrainingResult(
        config=config,
        cancelled=cancelled,
        history=history,
        best_epoch=None,
        stopped_early=stopped_early,
        early_stopping_metric=monitored,
        threshold=None,
        val=None,
        test=None,
        state_dict=None,
        input_dimensions=train_split.X.shape[1],
        split_rows={name: split.rows for name, split in data.items()},
        device=str(device),
        device_name=device_name(device),
        deterministic=deterministic,
        duration_seconds=0.0,  # train() measures the whole call
        notes=notes,
    )
    if cancelled:
        return result

    model.load_state_dict(best_state)
    threshold = config["threshold"]
    val_evaluation = _evaluate(model, val_split) if val_split.rows else None
    if tune_threshold and val_evaluation is not None:
        threshold = best_f1_threshold(val_split.labels, val_evaluation[1])
    result.predictions = {name: np.empty(0, dtype=np.float64) for name in ("val", "test")}
    if val_evaluation is not None:
        result.val = split_metrics(val_split.labels, val_evaluation[1], val_evaluation[0], threshold)
        result.predictions["val"] = val_evaluation[1]
    if data["test"].rows:
        test_loss, test_probabilities = _evaluate(model, data["test"])
        result.test = split_metrics(data["test"].labels, test_probabilities, test_loss, threshold)
        result.predictions["test"] = test_probabilities
    else:
        notes.append("the test split is empty: no test metrics")
    result.best_epoch = best_epoch
    result.threshold = threshold
    result.state_dict = {key: value.detach().cpu().clone() for key, value in best_state.items()}
    return result


__all__ = [
    "EpochMetrics",
    "TrainingArrays",
    "TrainingArraysLike",
    "TrainingDataError",
    "TrainingDiverged",
    "TrainingError",
    "TrainingResult",
    "class_weights",
    "device_name",
    "resolve_device",
    "train",
]
