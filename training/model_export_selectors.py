"""Reads of a model version's ONNX export: where it lives and what its sidecar recorded.

The export is a file, not a row: ``<CVSA_ARTIFACTS_DIR>/models/<version id>/model.onnx``
with ``model.onnx.json`` next to it (size, SHA-256, the parity check's rows and max
difference). A file without its sidecar, or whose bytes no longer match the recorded
SHA-256, is not served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from training.served_models import file_sha256

ONNX_FILE_NAME = "model.onnx"
ONNX_SIDECAR_NAME = "model.onnx.json"


class OnnxFileChanged(Exception):
    """The exported file's bytes no longer match the SHA-256 its export recorded."""


@dataclass(frozen=True)
class OnnxExportInfo:
    """What the export of a version recorded (the sidecar's fields)."""

    version_id: int
    size: int
    sha256: str
    max_difference: float
    tolerance: float
    checked_rows: int
    dataset_version_id: str
    split: str
    weights_sha256: str
    opset: int
    exported_at: str
    exported_by: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnnxExportInfo:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def onnx_export_dir(version_id: int) -> Path:
    return Path(settings.CVSA_ARTIFACTS_DIR) / "models" / str(int(version_id))


def onnx_export_info(version_id: int) -> OnnxExportInfo | None:
    """The version's export as its sidecar recorded it; None when it was never exported
    (or the file or its sidecar is gone or unreadable)."""
    folder = onnx_export_dir(version_id)
    if not (folder / ONNX_FILE_NAME).is_file():
        return None
    try:
        return OnnxExportInfo.from_json(json.loads((folder / ONNX_SIDECAR_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def onnx_export_file(version_id: int) -> tuple[Path, OnnxExportInfo] | None:
    """The exported file to serve with its info; None when not exported. Raises
    ``OnnxFileChanged`` when the file's SHA-256 is not the recorded one."""
    info = onnx_export_info(version_id)
    if info is None:
        return None
    path = onnx_export_dir(version_id) / ONNX_FILE_NAME
    actual = file_sha256(path)
    if actual != info.sha256:
        raise OnnxFileChanged(f"{ONNX_FILE_NAME} of model version {version_id} changed since it was exported "
                              f"(sha256 {actual[:12]}…, recorded {info.sha256[:12]}…): export it again")
    return path, info
