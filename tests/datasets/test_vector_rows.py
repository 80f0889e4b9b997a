"""datasets.vector_rows: the layouts of the embedding store's and a version's binary COPY rows."""

from __future__ import annotations

import numpy as np
import pytest

from core import pgcopy
from datasets.vector_rows import MemberRowsReader, checksum_vector_rows, member_rows_dtype

CHECKSUM = "ab" * 32


def test_checksum_vector_rows_refuse_mismatched_input():
    with pytest.raises(ValueError, match=r"2 checksums but vectors of shape \(1, 3\)"):
        checksum_vector_rows([CHECKSUM, CHECKSUM], np.ones((1, 3)))
    with pytest.raises(ValueError, match="every checksum must be 64 hex characters"):
        checksum_vector_rows(["abc"], np.ones((1, 3)))


def test_checksum_vector_rows_frame_every_row():
    payload = checksum_vector_rows([CHECKSUM, "cd" * 32], np.array([[1, 2], [3, 4]], dtype=np.float64))

    row_bytes = 2 + 4 + 64 + 4 + 2 + 2 + 4 * 2
    assert len(payload) == len(pgcopy.COPY_HEADER) + 2 * row_bytes + len(pgcopy.COPY_TRAILER)
    first = payload[len(pgcopy.COPY_HEADER) :][:row_bytes]
    assert first[:6] == (2).to_bytes(2, "big") + (64).to_bytes(4, "big")
    assert first[6:70] == CHECKSUM.encode()
    assert first[70:] == (12).to_bytes(4, "big") + (2).to_bytes(2, "big") + bytes(2) + np.array([1, 2], ">f4").tobytes()


def test_member_rows_of_another_dimension_are_refused():
    rows = np.zeros(3, dtype=member_rows_dtype(4))
    stream = pgcopy.rows_payload(rows)

    def read(dimensions: int) -> None:
        reader = MemberRowsReader(dimensions, capacity=3)
        reader.feed(stream)
        reader.finish()

    # Rows of another width are misaligned: a row's prefixes or the body size give it away.
    with pytest.raises(pgcopy.CopyFormatError, match=r"unexpected .* in binary COPY rows|not a whole number of 3-dim"):
        read(3)
    with pytest.raises(pgcopy.CopyFormatError, match="unexpected fields"):
        read(4)
