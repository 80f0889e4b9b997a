"""The architectures a run can train, each with its hyperparameter schema.

Every architecture is a binary classifier over a dataset version's embedding: it maps
float32 vectors ``(n, d)`` to one logit per row ``(n,)``. Its schema is the shared
training part (optimiser, schedule, early stopping, class weighting, threshold, seed)
followed by its own parameters (``group="architecture"``).

``resolve_config("mlp", {"lr": "1e-3"})`` is the one entry point for validation: the
run form, the API and ``manage.py train`` all go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from torch import nn

from training.hyperparameters import Hyperparameter, ParamType, ResolvedConfig, Schema, schema_as_json, validate

EARLY_STOPPING_METRICS = ("val_loss", "val_f1", "val_roc_auc")
CLASS_WEIGHTINGS = ("none", "balanced", "pos_weight")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "plateau")
THRESHOLD_MODES = ("fixed", "max_val_f1")
ACTIVATIONS = ("relu", "gelu", "tanh")

# ReduceLROnPlateau's settings are fixed rather than exposed: two more knobs would
# rarely pay for the room they take in every form.
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 2

TRAINING_SCHEMA = Schema((
    Hyperparameter(
        "learning_rate", ParamType.FLOAT, 1e-3, "Optimiser step size.",
        minimum=1e-6, maximum=1.0, log_scale=True, aliases=("lr",),
    ),
    Hyperparameter(
        "weight_decay", ParamType.FLOAT, 0.0,
        "L2 penalty (decoupled for AdamW). 0 turns it off.",
        minimum=0.0, maximum=1.0,
    ),
    Hyperparameter(
        "batch_size", ParamType.INT, 256, "Training rows per optimiser step.",
        minimum=1, maximum=65536, log_scale=True,
    ),
    Hyperparameter("epochs", ParamType.INT, 30, "Maximum passes over the train split.", minimum=1, maximum=1000),
    Hyperparameter(
        "early_stopping_patience", ParamType.INT, 5,
        "Epochs without improvement of the early-stopping metric before training stops; 0 turns "
        "early stopping off. Either way the weights of the best epoch are kept.",
        minimum=0, maximum=1000, aliases=("patience",),
    ),
    Hyperparameter(
        "early_stopping_metric", ParamType.CHOICE, "val_loss",
        "Validation metric that picks the best epoch (loss is minimised, F1 and ROC-AUC maximised). "
        "ROC-AUC falls back to loss when the val split holds one class only.",
        choices=EARLY_STOPPING_METRICS,
    ),
    Hyperparameter(
        "class_weighting", ParamType.CHOICE, "none",
        "How the training loss weighs the classes: equally, 'balanced' (each class weighs "
        "n / (2 * class count), as scikit-learn does), or positives by positive_weight.",
        choices=CLASS_WEIGHTINGS,
    ),
    Hyperparameter(
        "positive_weight", ParamType.FLOAT, 1.0,
        "Weight of a positive row in the training loss when class_weighting is pos_weight.",
        minimum=0.01, maximum=1000.0, log_scale=True, aliases=("pos_weight",),
    ),
    Hyperparameter("optimizer", ParamType.CHOICE, "adamw", "Optimiser.", choices=OPTIMIZERS),
    Hyperparameter(
        "momentum", ParamType.FLOAT, 0.9, "Momentum when the optimiser is sgd.", minimum=0.0, maximum=0.999,
    ),
    Hyperparameter(
        "scheduler", ParamType.CHOICE, "none",
        "Learning-rate schedule: constant, cosine annealing to 0 over the epochs, or halved "
        f"after {PLATEAU_PATIENCE} epochs without improvement of the early-stopping metric.",
        choices=SCHEDULERS,
    ),
    Hyperparameter(
        "seed", ParamType.INT, 0,
        "Seeds weight initialisation, shuffling and dropout: two CPU runs with the same seed "
        "and data give identical results.",
        minimum=0, maximum=2**32 - 1,
    ),
    Hyperparameter(
        "threshold_mode", ParamType.CHOICE, "fixed",
        "Decision threshold on the predicted probability: the fixed threshold, or the one "
        "that maximises F1 on the val split (never chosen on test).",
        choices=THRESHOLD_MODES,
    ),
    Hyperparameter(
        "threshold", ParamType.FLOAT, 0.5,
        "Probability at or above which a row is predicted positive, when threshold_mode is fixed.",
        minimum=0.0, maximum=1.0,
    ),
))

MLP_SCHEMA = Schema((
    Hyperparameter(
        "hidden_sizes", ParamType.INT_LIST, (256, 64),
        'Width of each hidden layer, input side first, e.g. "256,64".',
        minimum=1, maximum=8192, min_items=1, max_items=8, group="architecture",
    ),
    Hyperparameter(
        "dropout", ParamType.FLOAT, 0.1, "Dropout probability after each hidden layer.",
        minimum=0.0, maximum=0.9, group="architecture",
    ),
    Hyperparameter(
        "activation", ParamType.CHOICE, "relu", "Activation after each hidden layer.",
        choices=ACTIVATIONS, group="architecture",
    ),
    Hyperparameter(
        "batch_norm", ParamType.BOOL, False, "Batch normalisation before each activation.",
        group="architecture",
    ),
))

_ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class BinaryClassifier(nn.Module):
    """A module whose output is one logit per input row: ``(n, d) -> (n,)``."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, inputs):
        return self.layers(inputs).squeeze(-1)


def build_mlp(input_dimensions: int, config: Mapping[str, Any]) -> BinaryClassifier:
    layers: list[nn.Module] = []
    width = input_dimensions
    for hidden in config["hidden_sizes"]:
        layers.append(nn.Linear(width, hidden))
        if config["batch_norm"]:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(_ACTIVATION_MODULES[config["activation"]]())
        if config["dropout"] > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, 1))
    return BinaryClassifier(nn.Sequential(*layers))


def build_logistic_regression(input_dimensions: int, config: Mapping[str, Any]) -> BinaryClassifier:
    return BinaryClassifier(nn.Sequential(nn.Linear(input_dimensions, 1)))


@dataclass(frozen=True)
class Architecture:
    key: str
    name: str
    description: str
    schema: Schema
    build: Callable[[int, Mapping[str, Any]], BinaryClassifier]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "hyperparameters": schema_as_json(self.schema),
        }


ARCHITECTURES: Mapping[str, Architecture] = {
    architecture.key: architecture
    for architecture in (
        Architecture(
            key="mlp",
            name="MLP",
            description="Multi-layer perceptron over the embedding: linear layers with an activation, "
            "optional batch normalisation and dropout, then one logit.",
            schema=TRAINING_SCHEMA + MLP_SCHEMA,
            build=build_mlp,
        ),
        Architecture(
            key="logreg",
            name="Logistic regression",
            description="Baseline: a single linear layer over the embedding (logistic regression "
            "trained by gradient descent; weight_decay is its L2 penalty).",
            # One linear layer over unit-length embeddings needs larger steps than an MLP:
            # at 1e-3 it has not converged after 30 epochs of the demo data (every
            # prediction negative at 0.5); at 1e-2 it has.
            schema=TRAINING_SCHEMA.with_defaults(learning_rate=1e-2),
            build=build_logistic_regression,
        ),
    )
}


def get_architecture(key: object) -> Architecture:
    """The registered architecture ``key``; ``ValidationError`` on ``architecture`` otherwise."""
    if isinstance(key, str) and key in ARCHITECTURES:
        return ARCHITECTURES[key]
    raise ValidationError({"architecture": f"unknown architecture {key!r} (choose one of: {', '.join(ARCHITECTURES)})"})


@dataclass(frozen=True)
class TrainingConfig:
    """What ``trainer.train`` needs besides the data: the architecture and its resolved
    hyperparameters. ``as_dict()`` is what a run records."""

    architecture: str
    hyperparameters: ResolvedConfig

    def __post_init__(self) -> None:
        schema = get_architecture(self.architecture).schema
        if tuple(self.hyperparameters) != schema.names:
            # Only ``resolve_config`` (or ``validate`` with the architecture's schema) makes these.
            raise ValueError(f"hyperparameters do not match the {self.architecture!r} schema")

    def __getitem__(self, name: str) -> Any:
        return self.hyperparameters[name]

    def as_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "hyperparameters": self.hyperparameters.as_dict()}

    def build_model(self, input_dimensions: int) -> BinaryClassifier:
        """A freshly initialised model (from torch's global RNG: seed it first)."""
        return get_architecture(self.architecture).build(input_dimensions, self.hyperparameters)


def resolve_config(architecture: object, raw: Mapping[str, object] | None = None) -> TrainingConfig:
    """``raw`` validated against ``architecture``'s schema (see ``hyperparameters.validate``)."""
    chosen = get_architecture(architecture)
    return TrainingConfig(architecture=chosen.key, hyperparameters=validate(chosen.schema, raw))


def architectures_as_json() -> list[dict[str, Any]]:
    """Every architecture with its schema: the body of ``GET /api/v1/architectures``."""
    return [architecture.as_json() for architecture in ARCHITECTURES.values()]


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "BinaryClassifier",
    "MLP_SCHEMA",
    "TRAINING_SCHEMA",
    "TrainingConfig",
    "architectures_as_json",
    "get_architecture",
    "resolve_config",
]
