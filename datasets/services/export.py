"""Export of a ready dataset version to Parquet or NPZ."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError

from datasets.models import DatasetVersion
from datasets.selectors import dataset_version_get, dataset_version_member_texts, version_arrays


EXPORT_FORMATS = ("parquet", "npz")


def dataset_version_export(
    version: DatasetVersion | uuid.UUID | str, *, format: str, path: str | os.PathLike[str]
) -> Path:
    """Write a ready version to ``path``; three queries whatever its size (the version,
    one binary COPY of the vectors, one query for titles and checksums).

    - ``parquet``: columns aid (int64), label (bool), split (string), title (string),
      text_checksum (string), vector (fixed_size_list<float32>[dimensions]); schema
      metadata holds the version id, model key, dimensions, template version and
      content hash.
    - ``npz``: arrays X (float32 n×d), y (int8), aid (int64), split ('<U5').

    Rows are ordered by aid. Returns the path written.
    """
    if format not in EXPORT_FORMATS:
        raise ValidationError({"format": f"unknown export format {format!r} (one of: {', '.join(EXPORT_FORMATS)})"})
    version = dataset_version_get(version.pk if isinstance(version, DatasetVersion) else version)
    arrays = version_arrays(version)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if format == "npz":
        with open(target, "wb") as handle:  # keep the exact name (np.savez would append .npz)
            np.savez(handle, X=arrays.X, y=arrays.y, aid=arrays.aids, split=arrays.splits)
        return target

    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = dataset_version_member_texts(version.pk)
    if [aid for aid, _, _ in texts] != arrays.aids.tolist():
        raise RuntimeError(f"dataset version {version.pk} changed while exporting")
    dimensions = arrays.X.shape[1]
    vector = pa.FixedSizeListArray.from_arrays(pa.array(arrays.X.reshape(-1), type=pa.float32()), dimensions)
    table = pa.table(
        {
            "aid": pa.array(arrays.aids, type=pa.int64()),
            "label": pa.array(arrays.y.astype(bool), type=pa.bool_()),
            "split": pa.array(arrays.splits.tolist(), type=pa.string()),
            "title": pa.array([title for _, title, _ in texts], type=pa.string()),
            "text_checksum": pa.array([checksum for _, _, checksum in texts], type=pa.string()),
            "vector": vector,
        }
    )
    metadata = {
        "cvsa.dataset_version": str(version.pk),
        "cvsa.dataset": version.dataset.name,
        "cvsa.version_number": str(version.number),
        "cvsa.embedding_model": version.embedding_model.key,
        "cvsa.dimensions": str(version.embedding_dimensions),
        "cvsa.text_template_version": version.text_template_version,
        "cvsa.content_hash": version.content_hash,
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    pq.write_table(table, target)
    return target
