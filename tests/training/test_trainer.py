"""The plain-torch trainer on small synthetic arrays (no database needed)."""

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.exceptions import ValidationError
from sklearn.metrics import f1_score

from training.architectures import ARCHITECTURES, TrainingConfig, resolve_config
from training.hyperparameters import validate
from training.metrics import best_f1_threshold
from training.trainer import (
    EpochMetrics,
    TrainingArrays,
    TrainingDataError,
    TrainingDiverged,
    class_weights,
    train,
)

DIMENSIONS = 8
FAST = {"epochs": 8, "learning_rate": 0.02, "batch_size": 32, "early_stopping_patience": 0}
SMALL_MLP = {**FAST, "hidden_sizes": "16,8", "dropout": 0.1}


def separable(rows=(160, 60, 60), *, positive_rate=0.4, seed=0, val_labels=None) -> TrainingArrays:
    """Two Gaussian blobs a few standard deviations apart, split train/val/test."""
    generator = np.random.default_rng(seed)
    total = sum(rows)
    y = (generator.random(total) < positive_rate).astype(np.int8)
    X = generator.normal(size=(total, DIMENSIONS)).astype(np.float32)
    X[:, :2] += np.where(y[:, None] == 1, 2.0, -2.0).astype(np.float32)
    splits = np.array(["train"] * rows[0] + ["val"] * rows[1] + ["test"] * rows[2], dtype="<U5")
    if val_labels is not None:
        y[splits == "val"] = val_labels
    return TrainingArrays(X=X, y=y, splits=splits)


def fake_clock(step=1.5):
    ticks = itertools.count(0.0, step)
    return lambda: next(ticks)


def test_dataset_version_arrays_fit_the_trainer_as_they_are():
    from datasets.selectors import DatasetArrays

    arrays = separable()
    version_arrays = DatasetArrays(
        X=arrays.X, y=arrays.y, aids=np.arange(len(arrays.y), dtype=np.int64), splits=arrays.splits
    )

    result = train(version_arrays, resolve_config("logreg", {**FAST, "epochs": 2}), device="cpu")

    assert result.split_rows == {"train": 160, "val": 60, "test": 60}
    assert result.input_dimensions == DIMENSIONS


@pytest.mark.parametrize(("architecture", "overrides"), [
    ("mlp", SMALL_MLP),
    ("mlp", {**SMALL_MLP, "batch_norm": True, "activation": "gelu"}),
    ("logreg", FAST),
])
def test_each_architecture_learns_a_separable_dataset(architecture, overrides):
    result = train(separable(), resolve_config(architecture, overrides), device="cpu")

    assert not result.cancelled
    assert result.test.f1 >= 0.95 and result.val.f1 >= 0.95
    assert result.test.roc_auc >= 0.98
    assert 0 <= result.test.pr_auc <= 1
    (tn, fp), (fn, tp) = result.test.confusion_matrix
    assert tn + fp + fn + tp == result.test.rows == 60
    assert tp + fn == result.test.positives
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.device == "cpu" and result.device_name
    assert result.deterministic is True
    assert set(result.final_metrics()) >= {"val_f1", "test_f1", "test_roc_auc", "test_pr_auc", "test_accuracy"}


def test_the_state_dict_loads_into_a_fresh_model_and_predicts_the_same():
    arrays = separable()
    config = resolve_config("mlp", SMALL_MLP)
    result = train(arrays, config, device="cpu")

    model = config.build_model(result.input_dimensions)
    model.load_state_dict(result.state_dict)
    model.eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(model(torch.from_numpy(arrays.X[arrays.splits == "test"]))).numpy()
    predicted = (probabilities >= result.threshold).astype(int)

    assert f1_score(arrays.y[arrays.splits == "test"], predicted) == pytest.approx(result.test.f1)
    assert all(tensor.device.type == "cpu" for tensor in result.state_dict.values())


def test_the_predictions_are_the_best_weights_probabilities_in_each_splits_row_order():
    ordered = separable()
    # Interleave the splits, so that "the order of the split's rows" is not "the first rows".
    permutation = np.random.default_rng(5).permutation(len(ordered.y))
    arrays = TrainingArrays(X=ordered.X[permutation], y=ordered.y[permutation], splits=ordered.splits[permutation])
    config = resolve_config("mlp", {**SMALL_MLP, "early_stopping_patience": 2})
    result = train(arrays, config, device="cpu")

    model = config.build_model(result.input_dimensions)
    model.load_state_dict(result.state_dict)
    model.eval()
    assert set(result.predictions) == {"val", "test"}
    for split, metrics in (("val", result.val), ("test", result.test)):
        rows = arrays.splits == split
        with torch.no_grad():
            expected = torch.sigmoid(model(torch.from_numpy(arrays.X[rows]))).double().numpy()
        probabilities = result.predictions[split]
        assert probabilities.shape == (rows.sum(),)
        np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
        predicted = probabilities >= result.threshold
        labels = arrays.y[rows] == 1
        (tn, fp), (fn, tp) = metrics.confusion_matrix
        assert (fp, fn) == ((predicted & ~labels).sum(), (~predicted & labels).sum())


def test_no_predictions_when_cancelled_and_empty_ones_for_an_empty_split():
    cancelled = train(separable(), resolve_config("logreg", FAST), device="cpu", should_stop=lambda: True)
    no_test = train(separable(rows=(160, 60, 0)), resolve_config("logreg", FAST), device="cpu")

    assert cancelled.predictions == {}
    assert no_test.predictions["test"].shape == (0,) and no_test.predictions["val"].shape == (60,)


def test_two_runs_with_the_same_seed_are_identical():
    arrays = separable()
    config = resolve_config("mlp", {**SMALL_MLP, "seed": 11, "batch_norm": True})

    first = train(arrays, config, device="cpu", clock=fake_clock())
    second = train(arrays, config, device="cpu", clock=fake_clock())

    assert first.history == second.history
    assert first.val == second.val and first.test == second.test
    assert first.threshold == second.threshold
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[key], second.state_dict[key]) for key in first.state_dict)


def test_a_different_seed_gives_different_weights():
    arrays = separable()

    first = train(arrays, resolve_config("mlp", {**SMALL_MLP, "seed": 1}), device="cpu")
    second = train(arrays, resolve_config("mlp", {**SMALL_MLP, "seed": 2}), device="cpu")

    assert not torch.equal(first.state_dict["layers.0.weight"], second.state_dict["layers.0.weight"])
    assert [epoch.train_loss for epoch in first.history] != [epoch.train_loss for epoch in second.history]


def test_deterministic_mode_is_switched_back_after_training():
    before = torch.are_deterministic_algorithms_enabled()

    train(separable(), resolve_config("logreg", {**FAST, "epochs": 1}), device="cpu")

    assert torch.are_deterministic_algorithms_enabled() == before


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    # Val labels contradict train's: the better the model fits train, the worse val
    # gets, so the first epoch is the best one.
    arrays = separable()
    arrays.y[arrays.splits == "val"] = 1 - arrays.y[arrays.splits == "val"]
    config = resolve_config("mlp", {**SMALL_MLP, "epochs": 30, "early_stopping_patience": 3})

    result = train(arrays, config, device="cpu")
    first_epoch_only = train(arrays, resolve_config("mlp", {**SMALL_MLP, "epochs": 1}), device="cpu")

    assert result.stopped_early and result.early_stopping_metric == "val_loss"
    assert result.best_epoch == 1
    assert [epoch.epoch for epoch in result.history] == [1, 2, 3, 4]
    assert result.val.loss == pytest.approx(result.history[0].val_loss)
    assert all(torch.equal(result.state_dict[key], first_epoch_only.state_dict[key]) for key in result.state_dict)


def test_early_stopping_on_a_maximised_metric_keeps_its_best_epoch():
    result = train(
        separable(seed=3),
        resolve_config("logreg", {**FAST, "epochs": 12, "early_stopping_metric": "val_roc_auc",
                                  "early_stopping_patience": 2}),
        device="cpu",
    )

    best = max(result.history, key=lambda epoch: epoch.val_roc_auc)
    assert result.early_stopping_metric == "val_roc_auc"
    assert result.history[result.best_epoch - 1].val_roc_auc == best.val_roc_auc
    assert result.best_epoch == min(epoch.epoch for epoch in result.history if epoch.val_roc_auc == best.val_roc_auc)
    assert result.epochs_run == 12 or result.epochs_run - result.best_epoch == 2


def test_best_f1_threshold_picks_the_f1_maximum_with_a_margin():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8])

    # F1 is best (0.8) predicting positive from 0.35 up; halfway down to 0.1 keeps the
    # same predictions on these rows.
    assert best_f1_threshold(labels, probabilities) == pytest.approx(0.225)
    assert best_f1_threshold(np.array([0, 0]), np.array([0.2, 0.7])) is None
    assert best_f1_threshold(np.array([1, 1]), np.array([0.2, 0.7])) == pytest.approx(0.2)


def test_the_threshold_is_tuned_on_val_to_maximise_f1():
    # Overlapping, imbalanced classes: 0.5 is not where F1 peaks.
    arrays = separable(rows=(200, 120, 80), positive_rate=0.15, seed=5)
    arrays.X[:, :2] *= 0.3
    config = resolve_config("logreg", {**FAST, "threshold_mode": "max_val_f1"})

    tuned = train(arrays, config, device="cpu")
    fixed = train(arrays, resolve_config("logreg", {**FAST, "threshold_mode": "fixed"}), device="cpu")

    model = config.build_model(DIMENSIONS)
    model.load_state_dict(tuned.state_dict)
    model.eval()
    with torch.no_grad():
        val_probabilities = torch.sigmoid(model(torch.from_numpy(arrays.X[arrays.splits == "val"]))).double().numpy()
    val_labels = arrays.y[arrays.splits == "val"]
    best_possible = max(
        f1_score(val_labels, val_probabilities >= candidate, zero_division=0) for candidate in np.unique(val_probabilities)
    )
    assert tuned.threshold != 0.5
    assert tuned.val.threshold == tuned.test.threshold == tuned.threshold
    assert tuned.val.f1 == pytest.approx(best_possible)
    assert tuned.val.f1 > fixed.val.f1
    assert fixed.threshold == 0.5


def test_a_fixed_threshold_is_used_as_given():
    result = train(separable(), resolve_config("logreg", {**FAST, "threshold": 0.8}), device="cpu")

    assert result.threshold == result.test.threshold == 0.8


def test_should_stop_cancels_at_a_batch_boundary_with_partial_history():
    # 160 train rows at batch 40: four batches an epoch. The seventh check comes
    # before the third batch of epoch 2.
    checks = []
    epochs = []

    def should_stop():
        checks.append(len(checks) + 1)
        return len(checks) == 7

    result = train(
        separable(), resolve_config("mlp", {**SMALL_MLP, "batch_size": 40}),
        on_epoch=epochs.append, should_stop=should_stop, device="cpu",
    )

    assert result.cancelled
    assert len(checks) == 7
    assert [epoch.epoch for epoch in result.history] == [1] and epochs == result.history
    assert result.val is None and result.test is None and result.state_dict is None
    assert result.best_epoch is None and result.threshold is None


def test_a_stop_before_the_first_batch_trains_nothing():
    result = train(separable(), resolve_config("logreg", FAST), should_stop=lambda: True, device="cpu")

    assert result.cancelled and result.history == []


def test_the_epoch_callback_is_called_once_per_epoch_with_clocked_seconds():
    received: list[EpochMetrics] = []
    config = resolve_config("mlp", {**SMALL_MLP, "epochs": 4, "scheduler": "cosine", "learning_rate": 0.01})

    result = train(separable(), config, on_epoch=received.append, device="cpu", clock=fake_clock(1.5))

    assert [epoch.epoch for epoch in received] == [1, 2, 3, 4]
    assert received == result.history
    assert [epoch.epoch_seconds for epoch in received] == [1.5] * 4
    assert result.duration_seconds > sum(epoch.epoch_seconds for epoch in received)
    assert [epoch.learning_rate for epoch in received] == pytest.approx(
        [0.005 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    )
    for epoch in received:
        assert epoch.train_loss > 0 and 0 <= epoch.val_loss
        assert 0 <= epoch.val_f1 <= 1 and 0 <= epoch.val_accuracy <= 1 and 0 <= epoch.val_roc_auc <= 1
        assert set(epoch.metric_values()) == {
            "train_loss", "val_loss", "val_f1", "val_accuracy", "val_roc_auc", "learning_rate", "epoch_seconds",
        }


def test_a_single_class_val_split_gives_none_not_a_crash():
    arrays = separable(val_labels=0)
    config = resolve_config("mlp", {
        **SMALL_MLP, "early_stopping_metric": "val_roc_auc", "early_stopping_patience": 2,
        "threshold_mode": "max_val_f1",
    })

    result = train(arrays, config, device="cpu")

    assert all(epoch.val_roc_auc is None for epoch in result.history)
    assert "val_roc_auc" not in result.history[0].metric_values()
    assert result.val.roc_auc is None and result.val.pr_auc is None
    assert result.val.positives == 0 and result.val.f1 == 0.0
    assert result.early_stopping_metric == "val_loss"
    assert result.threshold == 0.5
    assert any("one class" in note for note in result.notes)
    assert any("fixed threshold" in note for note in result.notes)
    assert result.test.roc_auc is not None


def test_a_single_class_test_split_has_no_roc_auc():
    arrays = separable()
    arrays.y[arrays.splits == "test"] = 1

    result = train(arrays, resolve_config("logreg", FAST), device="cpu")

    assert result.test.roc_auc is None
    assert result.test.pr_auc == pytest.approx(1.0)


def test_empty_val_and_test_splits_keep_the_last_epoch():
    arrays = separable(rows=(160, 0, 0))

    result = train(arrays, resolve_config("logreg", {**FAST, "epochs": 3, "early_stopping_patience": 1}),
                   device="cpu")

    assert result.best_epoch == 3 and result.epochs_run == 3 and not result.stopped_early
    assert result.early_stopping_metric is None
    assert result.val is None and result.test is None
    assert result.history[0].val_loss is None
    assert result.final_metrics() == {}
    assert len(result.notes) == 2


@pytest.mark.parametrize(("weighting", "positive_weight", "expected"), [
    ("none", 1.0, None),
    ("balanced", 1.0, (4 / 6, 4 / 2)),
    ("pos_weight", 5.0, (1.0, 5.0)),
])
def test_class_weights(weighting, positive_weight, expected):
    config = resolve_config("logreg", {"class_weighting": weighting, "positive_weight": positive_weight})

    assert class_weights(config, np.array([0, 0, 0, 1])) == (pytest.approx(expected) if expected else None)
    assert class_weights(config, np.array([0, 0])) == (expected if weighting == "pos_weight" else None)


def test_weighting_positives_raises_recall():
    arrays = separable(rows=(200, 60, 200), positive_rate=0.2, seed=9)
    arrays.X[:, :2] *= 0.25

    plain = train(arrays, resolve_config("logreg", FAST), device="cpu")
    weighted = train(arrays, resolve_config("logreg", {**FAST, "class_weighting": "pos_weight",
                                                       "positive_weight": 20}), device="cpu")

    assert weighted.test.recall > plain.test.recall


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("scheduler", ["none", "cosine", "plateau"])
def test_every_optimizer_and_scheduler_trains(optimizer, scheduler):
    result = train(
        separable(), resolve_config("logreg", {**FAST, "epochs": 3, "optimizer": optimizer, "scheduler": scheduler,
                                               "learning_rate": 0.05}),
        device="cpu",
    )

    assert result.epochs_run == 3 and result.test.f1 > 0.9
    if scheduler == "none":
        assert {epoch.learning_rate for epoch in result.history} == {0.05}


def test_batch_norm_with_a_lone_last_row_folds_it_into_the_previous_batch():
    arrays = separable(rows=(65, 20, 20))

    result = train(arrays, resolve_config("mlp", {**SMALL_MLP, "batch_size": 32, "batch_norm": True,
                                                  "epochs": 2}), device="cpu")

    assert result.epochs_run == 2


def test_a_diverging_run_raises_with_the_reason():
    arrays = separable()
    arrays.X[:] *= 1e25
    config = resolve_config("logreg", {**FAST, "optimizer": "sgd", "learning_rate": 1.0})

    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train(arrays, config, device="cpu")


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: TrainingArrays(a.X[:, 0], a.y, a.splits), "X must be a 2-D array"),
    (lambda a: TrainingArrays(a.X, a.y[:-1], a.splits), "one value per row of X"),
    (lambda a: TrainingArrays(a.X, a.y * 2, a.splits), "y must hold only 0 and 1"),
    (lambda a: TrainingArrays(a.X, a.y, np.where(a.splits == "test", "holdout", a.splits)), "unknown split names"),
    (lambda a: TrainingArrays(np.where(a.X > 3, np.nan, a.X), a.y, a.splits), "finite"),
    (lambda a: TrainingArrays(a.X, a.y, np.where(a.splits == "train", "val", a.splits)), "train split is empty"),
])
def test_unusable_arrays_are_refused(change, message):
    with pytest.raises(TrainingDataError, match=message):
        train(change(separable()), resolve_config("logreg", FAST), device="cpu")


def test_an_unknown_architecture_is_a_validation_error():
    with pytest.raises(ValidationError) as caught:
        resolve_config("transformer", {})

    assert caught.value.message_dict == {"architecture": ["unknown architecture 'transformer' (choose one of: mlp, logreg)"]}


def test_a_config_must_match_its_architecture_schema():
    with pytest.raises(ValueError, match="do not match"):
        TrainingConfig("logreg", validate(ARCHITECTURES["mlp"].schema, {}))


def test_a_recorded_config_resolves_back_to_the_same_config():
    config = resolve_config("mlp", {"hidden_sizes": "32,16", "lr": "3e-4", "batch_norm": "on"})
    recorded = config.as_dict()

    assert resolve_config(recorded["architecture"], recorded["hyperparameters"]) == config


def test_the_models_have_the_declared_layers():
    mlp = resolve_config("mlp", {"hidden_sizes": "32,16", "batch_norm": True, "activation": "tanh",
                                 "dropout": 0.2}).build_model(DIMENSIONS)
    baseline = resolve_config("logreg").build_model(DIMENSIONS)

    names = [type(layer).__name__ for layer in mlp.layers]
    assert names == ["Linear", "BatchNorm1d", "Tanh", "Dropout"] * 2 + ["Linear"]
    assert [layer.out_features for layer in mlp.layers if isinstance(layer, torch.nn.Linear)] == [32, 16, 1]
    assert [type(layer).__name__ for layer in baseline.layers] == ["Linear"]
    assert baseline(torch.zeros(5, DIMENSIONS)).shape == (5,)


def test_the_trainer_imports_no_orm():
    code = (
        "import sys, training.trainer, training.architectures, training.hyperparameters; "
        "loaded = [name for name in sys.modules if name.split('.')[0] in"
        " ('core', 'labeling', 'datasets', 'experiments', 'cvsa_ml')"
        " or name.startswith(('django.db', 'django.apps', 'training.models', 'training.services'))]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=environment,
        capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
