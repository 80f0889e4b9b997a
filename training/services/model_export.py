"""Exporting a model version's network to ONNX, published only after ONNX Runtime has
been shown to score like torch.

The parity check runs on the TEST split of the version's run's dataset version (the rows
the run held out): the graph is published only when every probability is within
``PARITY_TOLERANCE`` of ``LoadedClassifier.probabilities``; otherwise nothing is written
and the error names the max difference. The file and its sidecar are written to
temporary names and renamed into place, so a reader never sees half an export.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.roles import can_run_experiments
from datasets.models import DatasetVersion, Split
from datasets.selectors import version_arrays
from training.models import ModelVersion
from training.model_export_selectors import ONNX_FILE_NAME, ONNX_SIDECAR_NAME, OnnxExportInfo, onnx_export_dir
from training.onnx_export import OPSET_VERSION, PARITY_TOLERANCE, OnnxExportError, onnx_export, onnx_parity
from training.registry_selectors import version_weights_path
from training.served_models import WeightsFileError, load_classifier

#: The split the parity check scores.
PARITY_SPLIT = Split.TEST


def _write_atomically(folder, name: str, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, folder / name)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def model_version_onnx_export(version_id: int, *, user=None, tolerance: float = PARITY_TOLERANCE) -> OnnxExportInfo:
    """Export version ``version_id`` to ``model.onnx`` (replacing an earlier export) and
    return what was recorded. Raises ``ModelVersion.DoesNotExist``, ``PermissionDenied``
    (``user`` not an admin; None: a trusted caller) or ``ValidationError`` (``weights``:
    the weights file is missing or changed; ``onnx``: export failed, no test rows, or
    parity beyond ``tolerance``, with the max difference); nothing is written then."""
    if user is not None and not can_run_experiments(user):
        raise PermissionDenied("only admins can export model versions")
    version = ModelVersion.objects.select_related("run").get(pk=version_id)
    try:
        classifier = load_classifier(version_weights_path(version), expected_sha256=version.weights_sha256)
    except WeightsFileError as error:
        raise ValidationError({"weights": str(error)}) from None
    dataset_version = DatasetVersion.objects.defer("requested_aids", "selection").get(pk=version.run.dataset_version_id)
    X, _ = version_arrays(dataset_version).split(PARITY_SPLIT)
    if len(X) == 0:
        raise ValidationError({"onnx": f"the test split of dataset version {dataset_version} is empty: "
                                       "parity with torch cannot be checked"})
    try:
        graph = onnx_export(classifier)
        parity = onnx_parity(graph, classifier, X, tolerance=tolerance)
    except OnnxExportError as error:
        raise ValidationError({"onnx": str(error)}) from None
    if not parity.passed:
        raise ValidationError({"onnx": (
            f"ONNX Runtime's probabilities differ from torch's by up to {parity.max_difference:.3g} on the "
            f"{parity.rows} test rows of {dataset_version} (tolerance {tolerance:g}): the export was not published"
        )})
    info = OnnxExportInfo(
        version_id=version.pk, size=len(graph), sha256=hashlib.sha256(graph).hexdigest(),
        max_difference=parity.max_difference, tolerance=tolerance, checked_rows=parity.rows,
        dataset_version_id=str(dataset_version.pk), split=PARITY_SPLIT, weights_sha256=classifier.weights_sha256,
        opset=OPSET_VERSION, exported_at=timezone.now().isoformat(),
        exported_by=user.get_username() if user is not None else None,
    )
    folder = onnx_export_dir(version.pk)
    folder.mkdir(parents=True, exist_ok=True)
    # The file first: the sidecar (which readers check it against) names its hash.
    _write_atomically(folder, ONNX_FILE_NAME, graph)
    _write_atomically(folder, ONNX_SIDECAR_NAME, json.dumps(info.as_json(), indent=2).encode())
    return info
