"""datasets.selectors.version_arrays reads the member COPY block by block while it streams in:
the arrays must not depend on where chunks and blocks end, on the expected row count, and
a malformed stream must be refused (``datasets.vector_rows.MemberRowsReader``)."""

from __future__ import annotations

import numpy as np
import pytest

from core import pgcopy
from datasets import selectors, vector_rows
from datasets.models import DatasetVersionItem
from datasets.selectors import dataset_version_arrays, dataset_version_get, version_arrays
from datasets.vector_rows import MemberRowsReader, member_rows_dtype
from tests.training.factories import separable_dataset_version

DIMENSIONS = 3


def member_stream(rows: int, dimensions: int = DIMENSIONS, seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    generator = np.random.default_rng(seed)
    table = np.zeros(rows, dtype=member_rows_dtype(dimensions))
    table["fields"], table["aid_length"], table["label_length"], table["split_length"] = 4, 8, 1, 2
    for name, value in pgcopy.vector_field_values(dimensions).items():
        table[name] = value
    expected = {
        "X": generator.normal(size=(rows, dimensions)).astype(np.float32),
        "y": generator.integers(0, 2, rows).astype(np.int8),
        "aids": np.arange(1000, 1000 + rows, dtype=np.int64),
        "splits": np.array(["train", "val", "test"] * rows, dtype="<U5")[:rows],
    }
    table["values"], table["label"], table["aid"] = expected["X"], expected["y"], expected["aids"]
    table["split"] = np.tile([0, 1, 2], rows)[:rows]
    return pgcopy.rows_payload(table), expected


def read(stream: bytes, *, chunk: int, capacity: int, dimensions: int = DIMENSIONS) -> selectors.DatasetArrays:
    reader = MemberRowsReader(dimensions, capacity=capacity)
    for start in range(0, len(stream), chunk):
        reader.feed(stream[start:start + chunk])
    reader.finish()
    X, y, aids, split_codes = reader.columns()
    return selectors.DatasetArrays(X=X, y=y, aids=aids, splits=np.array(["train", "val", "test"])[split_codes])


@pytest.mark.parametrize("block_bytes", [1, 50, 10**6])
@pytest.mark.parametrize("chunk", [1, 7, 41, 10**6])
@pytest.mark.parametrize("capacity", [0, 1, 9, 40])
def test_rows_read_back_whatever_the_chunks_blocks_and_capacity(monkeypatch, block_bytes, chunk, capacity):
    monkeypatch.setattr(vector_rows, "ARRAYS_BLOCK_BYTES", block_bytes)
    stream, expected = member_stream(9)

    arrays = read(stream, chunk=chunk, capacity=capacity)

    assert arrays.X.dtype == np.float32 and arrays.X.shape == (9, DIMENSIONS)
    for name, values in expected.items():
        np.testing.assert_array_equal(getattr(arrays, name), values, err_msg=name)


def test_an_empty_stream_gives_empty_arrays():
    arrays = read(pgcopy.rows_payload(np.zeros(0, dtype=member_rows_dtype(DIMENSIONS))), chunk=5, capacity=0)

    assert arrays.X.shape == (0, DIMENSIONS) and len(arrays.y) == len(arrays.aids) == len(arrays.splits) == 0


@pytest.mark.parametrize("block_bytes", [1, 10**6])
def test_malformed_streams_are_refused(monkeypatch, block_bytes):
    monkeypatch.setattr(vector_rows, "ARRAYS_BLOCK_BYTES", block_bytes)
    stream, _ = member_stream(4)

    with pytest.raises(pgcopy.CopyFormatError, match="not a PostgreSQL binary COPY stream"):
        read(b"COPY" + stream[4:], chunk=8, capacity=4)
    with pytest.raises(pgcopy.CopyFormatError, match="not a PostgreSQL binary COPY stream"):
        read(stream[:10], chunk=8, capacity=4)
    with pytest.raises(pgcopy.CopyFormatError, match="no trailer"):
        read(stream[:-2], chunk=8, capacity=4)
    with pytest.raises(pgcopy.CopyFormatError, match=r"not a whole number of 3-dimension rows .*another dimension"):
        read(stream[:-5] + stream[-2:], chunk=8, capacity=4)
    rows = np.frombuffer(stream, dtype=member_rows_dtype(DIMENSIONS), count=4, offset=len(pgcopy.COPY_HEADER)).copy()
    rows["vector_length"][3] = 99
    with pytest.raises(pgcopy.CopyFormatError, match=r"unexpected vector_length in binary COPY rows \(expected 16\)"):
        read(pgcopy.rows_payload(rows), chunk=8, capacity=4)
    rows["fields"][1] = 9
    with pytest.raises(pgcopy.CopyFormatError, match=r"unexpected fields in binary COPY rows \(expected 4\)"):
        read(pgcopy.rows_payload(rows), chunk=8, capacity=4)


@pytest.mark.django_db
@pytest.mark.parametrize("block_bytes", [1, 100, vector_rows.ARRAYS_BLOCK_BYTES])
def test_a_version_reads_back_as_stored_whatever_the_block_size(monkeypatch, block_bytes):
    monkeypatch.setattr(vector_rows, "ARRAYS_BLOCK_BYTES", block_bytes)
    version = separable_dataset_version(rows=30, dimensions=5, seed=2)
    stored = list(
        DatasetVersionItem.objects.filter(version=version).order_by("video__aid")
        .values_list("video__aid", "label", "split", "embedding__vector")
    )

    arrays = dataset_version_arrays(version.pk)

    assert arrays.aids.tolist() == [row[0] for row in stored]
    assert arrays.y.tolist() == [int(row[1]) for row in stored]
    assert arrays.splits.tolist() == [row[2] for row in stored]
    np.testing.assert_array_equal(arrays.X, np.array([row[3] for row in stored], dtype=np.float32))


@pytest.mark.django_db
def test_a_row_count_below_the_rows_stored_grows_the_arrays(django_assert_num_queries):
    version = dataset_version_get(separable_dataset_version(rows=30, dimensions=5, seed=2).pk)
    expected = version_arrays(version)
    version.total_records = 1  # as an unready version's count may be

    with django_assert_num_queries(1):
        arrays = version_arrays(version)

    for name in ("X", "y", "aids", "splits"):
        np.testing.assert_array_equal(getattr(arrays, name), getattr(expected, name), err_msg=name)
