"""A trained classifier as an ONNX graph, and the check that ONNX Runtime scores like
torch. Plain torch / onnx / onnxruntime, no ORM: ``training.services.model_export``
loads the version, picks the rows and publishes the file.

The graph takes ``embedding`` (float32, ``(n, d)``, ``n`` dynamic) and returns
``probability`` (float32, ``(n,)``): the network's logit through a sigmoid, in eval
mode (dropout off, batch normalisation with its running statistics), exactly what
``LoadedClassifier.probabilities`` computes before widening to float64.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from training.served_models import SCORING_BATCH_ROWS, LoadedClassifier

INPUT_NAME = "embedding"
OUTPUT_NAME = "probability"
#: Every operator of our networks (Linear, BatchNorm, ReLU/GELU/Tanh, Sigmoid) exists in
#: this opset, which ONNX Runtime 1.1x and later all run.
OPSET_VERSION = 17
#: The largest |ONNX − torch| probability difference a published file may show.
PARITY_TOLERANCE = 1e-5


class OnnxExportError(ValueError):
    """The network could not be exported, or the exported graph does not score like torch."""


class _Probability(nn.Module):
    """The classifier's logit through a sigmoid: what the exported graph returns."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, embedding):
        return torch.sigmoid(self.classifier(embedding))


def onnx_export(classifier: LoadedClassifier) -> bytes:
    """The classifier's network as ONNX bytes (checked by ``onnx.checker``)."""
    module = _Probability(classifier.module).eval()
    example = torch.zeros((2, classifier.input_dimensions), dtype=torch.float32)
    buffer = io.BytesIO()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "rows"}, OUTPUT_NAME: {0: "rows"}},
                opset_version=OPSET_VERSION, dynamo=False,
            )
        graph = buffer.getvalue()
        onnx.checker.check_model(onnx.load_from_string(graph))
    except Exception as error:  # torch and onnx raise many types
        raise OnnxExportError(f"the network could not be exported to ONNX ({type(error).__name__}: {error})") from None
    return graph


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime against torch on the same rows."""

    rows: int
    max_difference: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance

    def as_json(self) -> dict:
        return {"rows": self.rows, "max_difference": self.max_difference, "tolerance": self.tolerance}


def onnx_probabilities(graph: bytes, X: np.ndarray) -> np.ndarray:
    """ONNX Runtime's probabilities (float64) of the graph for the rows of ``X``."""
    try:
        session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise OnnxExportError(f"ONNX Runtime cannot load the graph ({error})") from None
    inputs = np.ascontiguousarray(X, dtype=np.float32)
    if len(inputs) == 0:
        return np.empty(0, dtype=np.float64)
    outputs = [
        session.run([OUTPUT_NAME], {INPUT_NAME: inputs[start:start + SCORING_BATCH_ROWS]})[0]
        for start in range(0, len(inputs), SCORING_BATCH_ROWS)
    ]
    return np.concatenate(outputs).astype(np.float64).reshape(-1)


def onnx_parity(graph: bytes, classifier: LoadedClassifier, X: np.ndarray, *,
                tolerance: float = PARITY_TOLERANCE) -> ParityReport:
    """How far ONNX Runtime's probabilities are from torch's on the rows of ``X``. A
    shape mismatch or a non-finite output counts as an infinite difference."""
    expected = classifier.probabilities(X)
    actual = onnx_probabilities(graph, X)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        difference = float("inf")
    else:
        difference = float(np.max(np.abs(actual - expected))) if len(expected) else 0.0
    return ParityReport(rows=len(expected), max_difference=difference, tolerance=tolerance)
