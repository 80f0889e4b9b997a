"""The label import service (``labeling.label_import``): rows, users, idempotency, votes."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.roles import LABELERS
from labeling.label_import import ImportFileError, import_label_records, import_labels, resolve_format
from labeling.models import EffectiveLabel, Label, LabelSource, VideoConsensus
from tests.labeling.factories import LabelerFactory, LabelFactory, UserFactory
from tests.labeling.label_import_support import BASE_TIME, at, csv_file, jsonl, row

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]

User = get_user_model()


@pytest.fixture
def videos(make_video):
    """Three videos with aids 170001..170003."""
    return [make_video(aid=aid) for aid in (170001, 170002, 170003)]


def imported(**filters):
    return Label.objects.filter(source=LabelSource.IMPORT, **filters)


# --- good rows ---------------------------------------------------------------------------


def test_jsonl_rows_become_import_labels_with_the_files_times(videos):
    content = jsonl(
        row(170001, "alice", True, at(0)),
        row(170001, "bob", False, at(5)),
        row(170002, "alice", "no", at(10)),
    )

    result = import_labels(source=content, format="jsonl")

    assert (result.rows, result.written, result.already_present, result.users_created, result.rejected) == (3, 3, 0, 2, 0)
    assert result.errors == [] and not result.rolled_back
    labels = {(label.video.aid, label.user.username): label for label in imported().select_related("video", "user")}
    assert set(labels) == {(170001, "alice"), (170001, "bob"), (170002, "alice")}
    assert labels[(170001, "alice")].value is True
    assert labels[(170001, "bob")].value is False
    assert labels[(170002, "alice")].value is False
    # The file's time, not the time of the import (created_at is auto_now_add).
    assert labels[(170001, "alice")].created_at == BASE_TIME
    assert labels[(170001, "bob")].created_at == BASE_TIME + timedelta(minutes=5)
    assert all(label.retracted_at is None for label in labels.values())
    assert result.summary() == "Read 3 rows: 3 labels written, 0 already present, 2 users created, 0 rejected"


def test_csv_with_every_label_spelling_and_columns_in_any_order(videos):
    content = csv_file(
        f"True,170001,alice,{at(0)},x",
        f"yes,170002,alice,{at(1)},x",
        f"1,170003,alice,{at(2)},x",
        f"FALSE,170001,bob,{at(3)},x",
        f" No ,170002,bob,{at(4)},x",
        f"0,170003,bob,{at(5)},x",
        header="Label,AID,user,created_at,note",
    )

    result = import_labels(source=content, filename="old_labels.csv")

    assert (result.written, result.rejected) == (6, 0)
    assert sorted(imported().values_list("user__username", "video__aid", "value")) == [
        ("alice", 170001, True), ("alice", 170002, True), ("alice", 170003, True),
        ("bob", 170001, False), ("bob", 170002, False), ("bob", 170003, False),
    ]


def test_naive_times_are_read_in_the_time_zone_and_unix_seconds_are_accepted(videos, settings):
    content = jsonl(
        row(170001, "alice", True, "2024-03-01 12:00:00"),  # Asia/Shanghai: 04:00 UTC
        row(170002, "alice", True, str(int(BASE_TIME.timestamp()))),
        {"aid": 170003, "user": "alice", "label": True, "created_at": BASE_TIME.timestamp()},
    )

    assert import_labels(source=content, format="jsonl").written == 3

    assert set(imported().values_list("created_at", flat=True)) == {BASE_TIME}


def test_text_streams_and_a_bom_are_accepted(videos):
    text = "\ufeff" + jsonl(row(170001)).decode()

    assert import_labels(source=io.StringIO(text), format="jsonl").written == 1


# --- users -------------------------------------------------------------------------------


def test_new_names_become_labelers_without_a_usable_password_existing_names_are_matched(videos):
    existing = UserFactory(username="alice", groups=["reviewers"])

    result = import_labels(source=jsonl(row(170001, "alice"), row(170001, " carol ", True, at(1))), format="jsonl")

    assert (result.written, result.users_created) == (2, 1)
    carol = User.objects.get(username="carol")
    assert not carol.has_usable_password()
    assert carol.is_active
    assert list(carol.groups.values_list("name", flat=True)) == [LABELERS]
    assert imported(user=existing).count() == 1  # matched, not duplicated
    assert list(existing.groups.values_list("name", flat=True)) == ["reviewers"]  # groups left alone
    assert User.objects.filter(username__in=["alice", "carol"]).count() == 2


def test_user_names_match_exactly(videos):
    LabelerFactory(username="Alice")

    result = import_labels(source=jsonl(row(170001, "alice")), format="jsonl")

    assert result.users_created == 1
    assert set(User.objects.values_list("username", flat=True)) >= {"Alice", "alice"}


# --- bad rows ----------------------------------------------------------------------------


def test_every_kind_of_bad_row_is_reported_with_its_line_while_good_rows_are_written(videos):
    content = jsonl(
        row(170001, "alice", True, at(0)),                   # 1 good
        row(999, "alice"),                                    # 2 unknown aid
        row(170001, "bob", "maybe"),                          # 3 bad label
        row(170001, "bob", True, "yesterday"),                # 4 bad created_at
        {"aid": 170001, "user": "bob", "label": True},        # 5 missing created_at
        row(170001, "   "),                                   # 6 empty user
        "",                                                   # 7 blank: not a record
        row(170001, "alice", True, at(0)),                    # 8 duplicate of line 1
        "{not json",                                          # 9
        ["a", "list"],                                        # 10
        row("abc", "bob"),                                    # 11 bad aid
        row(170001, "bob", None),                             # 12 missing label
        row(170001, "has space"),                             # 13 invalid user name
        row(170001, "bob", True, "2999-01-01T00:00:00Z"),     # 14 future
        row(170002, "dave", False, at(1)),                    # 15 good
    )

    result = import_labels(source=content, format="jsonl")

    assert (result.rows, result.written, result.rejected, result.users_created) == (14, 2, 12, 2)
    assert result.errors == [
        (2, "aid: no video with aid 999 (import the video first)"),
        (3, 'label: must be true/false, 1/0 or yes/no (got "maybe")'),
        (4, 'created_at: must be an ISO 8601 date-time or unix seconds (got "yesterday")'),
        (5, "created_at: is required"),
        (6, "user: is required and must not be empty"),
        (8, "duplicate of line 1 (same aid, user and created_at)"),
        (9, result.errors[6][1]),
        (10, "record: must be a JSON object (got a list)"),
        (11, 'aid: must be a positive integer (got "abc")'),
        (12, "label: is required"),
        (13, 'user: not a valid user name (letters, digits and @ . + - _ only, at most 150 characters; got "has space")'),
        (14, 'created_at: is in the future (got "2999-01-01T00:00:00Z")'),
    ]
    assert result.errors[6][1].startswith("invalid JSON:")
    assert sorted(imported().values_list("video__aid", "user__username")) == [(170001, "alice"), (170002, "dave")]
    # No user for rows that were rejected (bob, "has space").
    assert set(User.objects.values_list("username", flat=True)) == {"alice", "dave"}


def test_csv_row_errors_carry_their_file_line(videos):
    content = csv_file(f"170001,alice,true,{at()}", "170001,bob,perhaps,2024-01-01", "", "170002,,true,2024-01-01")

    result = import_labels(source=content, format="csv")

    assert result.errors == [
        (3, 'label: must be true/false, 1/0 or yes/no (got "perhaps")'),
        (5, "user: is required and must not be empty"),
    ]
    assert result.written == 1


def test_the_same_row_with_another_offset_is_the_same_moment_and_a_duplicate(videos):
    content = jsonl(row(170001, "alice", True, "2024-03-01T12:00:00+08:00"), row(170001, "alice", True, "2024-03-01T04:00:00Z"))

    result = import_labels(source=content, format="jsonl", chunk_size=1)

    assert result.errors == [(2, "duplicate of line 1 (same aid, user and created_at)")]
    assert imported().count() == 1


def test_stored_errors_are_capped_but_counted(videos):
    content = jsonl(*(row(999, "alice", True, at(minute)) for minute in range(30)), row(170001))

    result = import_labels(source=content, format="jsonl", max_errors=5)

    assert (result.rejected, len(result.errors), result.errors_omitted, result.written) == (30, 5, 25, 1)


# --- idempotency -------------------------------------------------------------------------


def test_reimporting_the_same_file_writes_nothing_new(videos):
    content = jsonl(row(170001, "alice", True, at(0)), row(170002, "bob", False, at(1)), row(170003, "alice", True, at(2)))
    first = import_labels(source=content, format="jsonl")

    again = import_labels(source=content, format="jsonl", chunk_size=2)

    assert (first.written, first.users_created) == (3, 2)
    assert (again.rows, again.written, again.already_present, again.users_created, again.rejected) == (3, 0, 3, 0, 0)
    assert imported().count() == 3
    assert User.objects.count() == 2


def test_a_file_overlapping_an_earlier_import_adds_only_the_new_rows(videos):
    import_labels(source=jsonl(row(170001, "alice", True, at(0))), format="jsonl")

    result = import_labels(source=jsonl(row(170001, "alice", True, at(0)), row(170001, "alice", False, at(9))), format="jsonl")

    assert (result.written, result.already_present) == (1, 1)
    assert imported().count() == 2
    # Both kept as history; the later one is alice's answer.
    assert EffectiveLabel.objects.get(video__aid=170001).value is False


def test_an_undone_imported_label_stays_undone_on_reimport(videos):
    content = jsonl(row(170001, "alice", True, at(0)))
    import_labels(source=content, format="jsonl")
    imported().update(retracted_at=BASE_TIME + timedelta(days=1))

    result = import_labels(source=content, format="jsonl")

    assert result.already_present == 1
    assert imported().get().retracted_at is not None
    assert not EffectiveLabel.objects.exists()


def test_a_reimported_row_with_the_opposite_answer_is_rejected_not_applied(videos):
    import_labels(source=jsonl(row(170001, "alice", True, at(0))), format="jsonl")

    result = import_labels(source=jsonl(row(170001, "alice", False, at(0))), format="jsonl")

    assert result.errors == [
        (1, "label: av170001 by alice at this created_at was imported before as yes; "
            "labels are append only, an import never changes one"),
    ]
    assert list(imported().values_list("value", flat=True)) == [True]


def test_a_human_label_at_the_same_moment_does_not_block_the_import(videos):
    alice = LabelerFactory(username="alice")
    LabelFactory(video=videos[0], user=alice, value=True, created_at=BASE_TIME)

    result = import_labels(source=jsonl(row(170001, "alice", True, at(0))), format="jsonl")

    assert result.written == 1
    assert Label.objects.filter(video=videos[0], user=alice).count() == 2


# --- votes -------------------------------------------------------------------------------


def test_imported_labels_are_votes_in_the_consensus(videos):
    content = jsonl(
        row(170001, "alice", True, at(0)),
        row(170001, "bob", True, at(1)),
        row(170001, "carol", False, at(2)),
        row(170002, "alice", False, at(3)),
    )

    import_labels(source=content, format="jsonl")

    first = VideoConsensus.objects.get(video__aid=170001)
    assert (first.positive_votes, first.negative_votes, first.value, first.total_votes) == (2, 1, True, 3)
    assert first.is_inconsistent
    assert first.last_labeled_at == BASE_TIME + timedelta(minutes=2)
    second = VideoConsensus.objects.get(video__aid=170002)
    assert (second.value, second.total_votes) == (False, 1)
    assert VideoConsensus.objects.get(video__aid=170003).total_votes == 0


def test_a_later_human_answer_replaces_the_imported_one(videos, vote):
    import_labels(source=jsonl(row(170001, "alice", True, at(0))), format="jsonl")
    alice = User.objects.get(username="alice")

    vote(videos[0], alice, False)  # now, long after the old system's time

    consensus = VideoConsensus.objects.get(video=videos[0])
    assert (consensus.positive_votes, consensus.negative_votes) == (0, 1)


# --- all or nothing, dry run, whole-file errors ------------------------------------------


def test_atomic_import_writes_nothing_when_a_row_is_bad(videos):
    content = jsonl(row(170001, "alice", True, at(0)), row(999, "bob"), row(170002, "carol", True, at(1)))

    result = import_labels(source=content, format="jsonl", atomic=True, chunk_size=1)

    assert result.rolled_back
    assert (result.written, result.users_created, result.rejected) == (2, 2, 1)
    assert result.errors == [(2, "aid: no video with aid 999 (import the video first)")]
    assert "nothing was written" in result.summary()
    assert not Label.objects.exists()
    assert not User.objects.exists()


def test_atomic_import_of_a_good_file_writes_everything(videos):
    result = import_labels(source=jsonl(row(170001), row(170002)), format="jsonl", atomic=True, chunk_size=1)

    assert (result.written, result.rolled_back) == (2, False)
    assert imported().count() == 2


def test_dry_run_counts_what_would_happen_and_writes_nothing(videos):
    import_labels(source=jsonl(row(170001, "alice", True, at(0))), format="jsonl")
    content = jsonl(row(170001, "alice", True, at(0)), row(170002, "bob", True, at(1)), row(170003, "bob", True, at(2)))

    result = import_labels(source=content, format="jsonl", dry_run=True, chunk_size=1)

    assert (result.written, result.already_present, result.users_created, result.rolled_back) == (2, 1, 1, True)
    assert result.summary() == (
        "Read 3 rows: 2 labels would be written, 1 already present, 1 users would be created, 0 rejected "
        "(dry run: nothing written)"
    )
    assert imported().count() == 1
    assert not User.objects.filter(username="bob").exists()


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"aid,username,label,created_at\n170001,alice,true,2024-01-01\n", {"format": "csv"},
         r"CSV header: required column\(s\) user missing"),
        (b"aid,user,label,created_at\n170001,alice,true,2024-01-01\n", {"format": "jsonl"},
         "no line of the file is valid JSON"),
        (b"{}", {"filename": "labels.json"}, "cannot tell the format of 'labels.json'"),
        (b"{}", {"format": "xml"}, "unsupported format 'xml'"),
        (b"{}", {}, "no format given"),
    ],
)
def test_a_file_that_cannot_be_read_raises_and_writes_nothing(videos, content, kwargs, message):
    with pytest.raises(ImportFileError, match=message):
        import_labels(source=content, **kwargs)

    assert not Label.objects.exists()
    assert not User.objects.exists()


def test_format_resolution():
    assert resolve_format(filename="dump.NDJSON") == "jsonl"
    assert resolve_format(filename="labels.csv") == "csv"
    assert resolve_format(format="CSV", filename="labels.jsonl") == "csv"


def test_records_are_numbered_by_item(videos):
    result = import_label_records(records=[row(170001), "nope", {"aid": 170002, "user": "bob", "label": True}])

    assert result.written == 1
    assert result.errors == [(2, "record: must be a JSON object (got a string)"), (3, "created_at: is required")]


def test_progress_reports_rows_read_after_each_chunk(videos):
    seen = []
    content = jsonl(*(row(170001, "alice", True, at(minute)) for minute in range(25)))

    import_labels(source=content, format="jsonl", chunk_size=10, progress=seen.append)

    assert seen == [10, 20, 25]


# --- round trips -------------------------------------------------------------------------


def _queries(content: bytes, **kwargs) -> int:
    with CaptureQueriesContext(connection) as context:
        import_labels(source=content, format="jsonl", **kwargs)
    return len(context.captured_queries)


def test_queries_per_chunk_do_not_depend_on_the_number_of_rows(make_videos):
    videos = make_videos(1000)
    small = jsonl(*(row(video.aid, f"user{index}", True, at(index)) for index, video in enumerate(videos[:10])))
    large = jsonl(*(row(video.aid, f"person{index}", True, at(index)) for index, video in enumerate(videos)))

    # One chunk each: new users (insert, select, memberships) and new labels.
    small_new = _queries(small)
    large_new = _queries(large)
    # Again: users matched, every label already present (the conflict check).
    small_again = _queries(small)
    large_again = _queries(large)

    assert small_new == large_new
    assert small_again == large_again
    assert Label.objects.count() == 1010
    assert User.objects.count() == 1010
    # Chunked: the same per-chunk statements, once per chunk.
    per_chunk = _queries(large, chunk_size=250)
    assert per_chunk == 4 * large_again


def test_query_count_is_bounded(make_videos, django_assert_max_num_queries):
    # Per chunk: SAVEPOINT, SELECT videos, SELECT users, INSERT users, SELECT users,
    # INSERT memberships, INSERT labels, RELEASE; once: the labelers group.
    videos = make_videos(20)
    content = jsonl(*(row(video.aid, f"user{index}", True, at(index)) for index, video in enumerate(videos)))

    with django_assert_max_num_queries(9):
        assert import_labels(source=content, format="jsonl").written == 20
