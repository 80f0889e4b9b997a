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


def member_rows_expected(dimensions: int) -> dict[str, int]:
    """The values every member row holds in its field count and length prefixes."""
    return {"fields": 4, "aid_length": 8, "label_length": 1, "split_length": 2,
            **pgcopy.vector_field_values(dimensions)}


# Member rows are converted a block at a time while the COPY streams in rather than
# after the whole stream has been read: the block is still in the CPU cache and the
# server keeps sending meanwhile, so loading costs about what reading the raw bytes
# costs (bench/training.py; converting the whole stream afterwards took ~1.5x as long)
# and the stream is never held in memory whole.
ARRAYS_BLOCK_BYTES = 4 * 2**20


class MemberRowsReader:
    """A binary COPY stream of member rows (``member_rows_dtype``), fed chunk by chunk,
    into native numpy arrays ``X``, ``y``, ``aids``, ``split_codes`` (the first ``rows``
    of each), validated as it goes: framing, a whole number of rows, the fixed field
    counts and lengths of every row (they would differ if a column had another type or
    width). Raises ``core.pgcopy.CopyFormatError``."""

    def __init__(self, dimensions: int, capacity: int) -> None:
        self.dimensions = dimensions
        self.dtype = member_rows_dtype(dimensions)
        self.fixed_fields = member_rows_expected(dimensions)
        self.rows = 0
        self.pending = bytearray()
        self.body_offset: int | None = None  # where rows start in ``pending`` once the header is read
        self._allocate(max(capacity, 0))

    def _allocate(self, capacity: int) -> None:
        arrays = (
            np.empty((capacity, self.dimensions), dtype=np.float32),
            np.empty(capacity, dtype=np.int8),
            np.empty(capacity, dtype=np.int64),
            np.empty(capacity, dtype=np.int16),
        )
        if self.rows:
            for grown, current in zip(arrays, (self.X, self.y, self.aids, self.split_codes)):
                grown[: self.rows] = current[: self.rows]
        self.X, self.y, self.aids, self.split_codes = arrays

    def feed(self, data) -> None:
        self.pending += data
        if len(self.pending) >= ARRAYS_BLOCK_BYTES:
            self._convert_whole_rows()

    def _convert_whole_rows(self) -> None:
        if self.body_offset is None:
            header = len(pgcopy.COPY_HEADER)
            if len(self.pending) < header:
                return
            if not self.pending.startswith(pgcopy.COPY_SIGNATURE):
                raise pgcopy.CopyFormatError("not a PostgreSQL binary COPY stream")
            self.body_offset = header + int.from_bytes(self.pending[15:19], "big")
        count = max(len(self.pending) - self.body_offset, 0) // self.dtype.itemsize
        if not count:
            return
        block = np.frombuffer(self.pending, dtype=self.dtype, count=count, offset=self.body_offset)
        for name, value in self.fixed_fields.items():
            if (block[name] != value).any():
                raise pgcopy.CopyFormatError(f"unexpected {name} in binary COPY rows (expected {value})")
        if self.rows + count > len(self.y):
            self._allocate(max(2 * len(self.y), self.rows + count))
        end = self.rows + count
        self.X[self.rows:end] = block["values"]  # big-endian -> native float32
        self.y[self.rows:end] = block["label"]
        self.aids[self.rows:end] = block["aid"]
        self.split_codes[self.rows:end] = block["split"]
        self.rows = end
        del block  # the bytearray cannot shrink while numpy holds a view of it
        del self.pending[: self.body_offset + count * self.dtype.itemsize]
        self.body_offset = 0

    def finish(self) -> None:
        """Convert what is left and check the stream ended with the trailer, on a row boundary."""
        self._convert_whole_rows()
        if self.body_offset is None:
            raise pgcopy.CopyFormatError("not a PostgreSQL binary COPY stream")
        rest = self.pending[self.body_offset:]
        if not rest.endswith(pgcopy.COPY_TRAILER):
            raise pgcopy.CopyFormatError("binary COPY stream has no trailer")
        if len(rest) != len(pgcopy.COPY_TRAILER):
            raise pgcopy.CopyFormatError(
                f"binary COPY body is not a whole number of {self.dimensions}-dimension rows "
                f"({self.dtype.itemsize} bytes each): vectors of another dimension in the version?"
            )

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, aids, split_codes) of the rows read."""
        rows = self.rows
        return self.X[:rows], self.y[:rows], self.aids[:rows], self.split_codes[:rows]
