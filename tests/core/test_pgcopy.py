"""core.pgcopy: binary COPY in and out through Django's connection, one counted query
each, and streams of the wrong shape refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from core import pgcopy


def _id_vector_dtype(dimensions: int) -> np.dtype:
    return np.dtype([("fields", ">i2"), ("id_length", ">i4"), ("id", ">i8"), *pgcopy.vector_fields(dimensions)])


def _id_vector_payload(ids: list[int], vectors: np.ndarray) -> bytes:
    rows = np.zeros(len(ids), dtype=_id_vector_dtype(vectors.shape[1]))
    rows["fields"], rows["id_length"], rows["id"] = 2, 8, ids
    for name, value in pgcopy.vector_field_values(vectors.shape[1]).items():
        rows[name] = value
    rows["values"] = vectors
    return pgcopy.rows_payload(rows)


def _expected(dimensions: int) -> dict[str, int]:
    return {"fields": 2, "id_length": 8, **pgcopy.vector_field_values(dimensions)}


@pytest.fixture
def vector_table(db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE pgcopy_probe (id int8 PRIMARY KEY, vector vector(3))")
    return "pgcopy_probe"


def test_rows_go_in_and_come_back_out_one_query_each(vector_table, django_assert_num_queries):
    vectors = np.array([[0.5, -1.0, 2.0], [3.25, 0.0, -0.125]], dtype=np.float32)

    with django_assert_num_queries(1):
        pgcopy.copy_in(f"COPY {vector_table} (id, vector) FROM STDIN (FORMAT BINARY)", _id_vector_payload([7, 9], vectors))
    with django_assert_num_queries(1) as captured:
        stream = pgcopy.copy_out(f"COPY (SELECT id, vector FROM {vector_table} ORDER BY id) TO STDOUT (FORMAT BINARY)")
    rows = pgcopy.parse_rows(stream, _id_vector_dtype(3), _expected(3))

    assert captured.captured_queries[0]["sql"].startswith("COPY (SELECT id, vector")
    assert rows["id"].tolist() == [7, 9]
    np.testing.assert_array_equal(rows["values"].astype(np.float32), vectors)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, vector::text FROM {vector_table} ORDER BY id")
        assert cursor.fetchall() == [(7, "[0.5,-1,2]"), (9, "[3.25,0,-0.125]")]


def test_an_empty_result_is_no_rows(vector_table):
    stream = pgcopy.copy_out(f"COPY (SELECT id, vector FROM {vector_table}) TO STDOUT (FORMAT BINARY)")

    assert pgcopy.parse_rows(stream, _id_vector_dtype(3), _expected(3)).size == 0


def test_a_column_of_another_width_is_refused(vector_table):
    pgcopy.copy_in(
        f"COPY {vector_table} (id, vector) FROM STDIN (FORMAT BINARY)",
        _id_vector_payload([1, 2], np.ones((2, 3), dtype=np.float32)),
    )
    # int4 ids: each row is 4 bytes shorter, so two rows are not a whole number of int8 rows.
    stream = pgcopy.copy_out(f"COPY (SELECT id::int4, vector FROM {vector_table}) TO STDOUT (FORMAT BINARY)")

    with pytest.raises(pgcopy.CopyFormatError, match=r"not a whole number of probe rows \(34 bytes each\): ids of int4\?"):
        pgcopy.parse_rows(stream, _id_vector_dtype(3), _expected(3), row_description="probe rows", size_hint="ids of int4?")


def test_rows_that_fit_the_size_but_not_the_layout_are_refused():
    rows = np.zeros(2, dtype=_id_vector_dtype(2))
    rows["fields"], rows["id_length"], rows["vector_length"], rows["dimensions"] = 2, 8, 12, 2
    rows["id_length"][1] = 4

    with pytest.raises(pgcopy.CopyFormatError, match=r"unexpected id_length in binary COPY rows \(expected 8\)"):
        pgcopy.parse_rows(pgcopy.rows_payload(rows), _id_vector_dtype(2), _expected(2))


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "not a PostgreSQL binary COPY stream"),
        (b"COPY 1\n" + bytes(30), "not a PostgreSQL binary COPY stream"),
        (pgcopy.COPY_HEADER + b"\x00\x00", "binary COPY stream has no trailer"),
        # A header extension longer than the stream: no body at all.
        (pgcopy.COPY_SIGNATURE + bytes(4) + (500).to_bytes(4, "big") + pgcopy.COPY_TRAILER, "not a whole number of rows"),
    ],
)
def test_broken_framing_is_refused(stream, message):
    with pytest.raises(pgcopy.CopyFormatError, match=message):
        pgcopy.parse_rows(stream, _id_vector_dtype(3), _expected(3))


def test_a_payload_is_header_rows_trailer():
    rows = np.zeros(1, dtype=_id_vector_dtype(1))

    payload = pgcopy.rows_payload(rows)

    assert payload.startswith(pgcopy.COPY_HEADER) and payload.endswith(pgcopy.COPY_TRAILER)
    assert len(payload) == len(pgcopy.COPY_HEADER) + rows.dtype.itemsize + len(pgcopy.COPY_TRAILER)
