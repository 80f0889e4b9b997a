"""The binary COPY row layouts of datasets' vector flows (the mechanism is ``core.pgcopy``):
``(checksum, vector)`` rows into the embedding store, and a version's member rows
``(aid, label, split code, vector)`` out of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core import pgcopy

CHECKSUM_BYTES = 64


def checksum_vector_rows(checksums: Sequence[str], vectors: np.ndarray) -> bytes:
    """A binary COPY payload of rows (checksum text, vector) for ``(checksum, vector)`` columns."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(checksums):
        raise ValueError(f"{len(checksums)} checksums but vectors of shape {vectors.shape}")
    count, dimensions = vectors.shape
    encoded = np.array([checksum.encode("ascii") for checksum in checksums], dtype=f"S{CHECKSUM_BYTES}")
    if count and (np.char.str_len(encoded) != CHECKSUM_BYTES).any():
        raise ValueError("every checksum must be 64 hex characters")
    dtype = np.dtype(
        [
            ("fields", ">i2"),
            ("checksum_length", ">i4"),
            ("checksum", f"S{CHECKSUM_BYTES}"),
            *pgcopy.vector_fields(dimensions),
        ]
    )
    rows = np.empty(count, dtype=dtype)
    rows["fields"] = 2
    rows["checksum_length"] = CHECKSUM_BYTES
    rows["checksum"] = encoded
    for name, value in pgcopy.vector_field_values(dimensions).items():
        rows[name] = value
    rows["unused"] = 0
    rows["values"] = vectors
    return pgcopy.rows_payload(rows)


def member_rows_dtype(dimensions: int) -> np.dtype:
    """Rows of ``COPY (SELECT aid::int8, label::bool, split_code::int2, vector) TO STDOUT``."""
    return np.dtype(
        [
            ("fields", ">i2"),
            ("aid_length", ">i4"),
            ("aid", ">i8"),
            ("label_length", ">i4"),
            ("label", "u1"),
            ("split_length", ">i4"),
            ("split", ">i2"),
            *pgcopy.vector_fields(dimensions),
        ]
    )


def parse_member_rows(stream: bytes, dimensions: int) -> np.ndarray:
    """Parse and validate a binary COPY stream of member rows into a structured array
    (raises ``core.pgcopy.CopyFormatError``)."""
    return pgcopy.parse_rows(
        stream,
        member_rows_dtype(dimensions),
        {"fields": 4, "aid_length": 8, "label_length": 1, "split_length": 2, **pgcopy.vector_field_values(dimensions)},
        row_description=f"{dimensions}-dimension rows",
        size_hint="vectors of another dimension in the version?",
    )
