"""A trained run's weights as a classifier that scores vectors: what evaluations,
predictions, batch scoring and the ONNX export all load. No ORM here: callers pass the
weights file (``weights_path_for_run``) and, when they have it, the SHA-256 the run
recorded, so that a file changed on disk since is refused instead of served.

Probabilities are computed exactly as the trainer's evaluation computes them (eval
mode, float32 forward pass in batches, sigmoid, float64), so a version scores its own
test split with the numbers its run logged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from training.architectures import BinaryClassifier, TrainingConfig, resolve_config

#: Rows per forward pass: bounded memory whatever the number of rows scored.
SCORING_BATCH_ROWS = 65_536
_READ_BLOCK_BYTES = 1 << 20


class WeightsFileError(ValueError):
    """The weights file is missing, unreadable, not a run's weights, or changed since
    its run recorded it."""


@dataclass(frozen=True)
class LoadedClassifier:
    """A run's network in eval mode on the CPU with its decision threshold."""

    module: BinaryClassifier
    config: TrainingConfig
    threshold: float
    input_dimensions: int
    weights_sha256: str

    @torch.inference_mode()
    def _logits(self, X: np.ndarray) -> torch.Tensor:
        if X.ndim != 2 or X.shape[1] != self.input_dimensions:
            raise ValueError(f"expected vectors of {self.input_dimensions} dimensions, got shape {X.shape}")
        if len(X) == 0:
            return torch.empty(0)
        inputs = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        return torch.cat([
            self.module(inputs[start:start + SCORING_BATCH_ROWS]) for start in range(0, len(inputs), SCORING_BATCH_ROWS)
        ])

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """float64 probability of the positive class for every row of ``X`` (n, d)."""
        return torch.sigmoid(self._logits(X)).double().numpy()

    def evaluate(self, X: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(mean unweighted binary cross-entropy, probabilities) of labelled rows, as the
        trainer's evaluation computes them."""
        logits = self._logits(X)
        targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        loss = functional.binary_cross_entropy_with_logits(logits, targets).item() if len(X) else float("nan")
        return loss, torch.sigmoid(logits).double().numpy()

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """The yes/no decision for each probability at the version's threshold."""
        return probabilities >= self.threshold


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def load_classifier(path: Path, *, expected_sha256: str | None = None) -> LoadedClassifier:
    """The classifier saved at ``path`` (a run's ``model.pt``). Raises
    ``WeightsFileError`` naming what is wrong."""
    try:
        sha256 = file_sha256(path)
    except OSError as error:
        raise WeightsFileError(f"cannot read the weights file {path.name}: {error.strerror or error}") from None
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise WeightsFileError(
            f"the weights file {path} changed since its run recorded it (sha256 {sha256[:12]}…, "
            f"recorded {expected_sha256[:12]}…)"
        )
    try:
        # Tensors, dicts and numbers only: never unpickle arbitrary objects.
        saved: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise WeightsFileError(f"{path.name} is not a readable weights file ({error})") from None
    try:
        config = resolve_config(saved["config"]["architecture"], saved["config"]["hyperparameters"])
        input_dimensions = int(saved["input_dimensions"])
        threshold = float(saved["threshold"])
        module = config.build_model(input_dimensions)
        module.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise WeightsFileError(f"{path.name} does not hold a run's classifier ({error})") from None
    except Exception as error:  # a ValidationError from a schema changed since the run
        raise WeightsFileError(f"{path.name}: its configuration no longer validates ({error})") from None
    module.eval()
    return LoadedClassifier(
        module=module, config=config, threshold=threshold, input_dimensions=input_dimensions, weights_sha256=sha256
    )
