import pytest

from labeling.models import Label, Video
from tests.labeling.factories import VideoFactory


@pytest.fixture
def make_videos(db):
    """``count`` factory videos in one INSERT (query-count tests need thousands)."""

    def make(count: int, **fields) -> list[Video]:
        return Video.objects.bulk_create(VideoFactory.build_batch(count, **fields))

    return make


@pytest.fixture
def make_video(make_videos):
    def make(**fields) -> Video:
        return make_videos(1, **fields)[0]

    return make


@pytest.fixture
def vote(db):
    """vote(video, user, True) appends a label, like a labeler pressing a key."""

    def add(video, user, value: bool) -> Label:
        return Label.objects.create(video=video, user=user, value=value)

    return add


@pytest.fixture
def reviewer(make_user):
    return make_user("rita", group="reviewers")


@pytest.fixture
def three_labelers(make_user):
    return [make_user(name, group="labelers") for name in ("ann", "bob", "cai")]


def label_conflicts(videos, users) -> None:
    """Every video gets yes, no, yes from three users: a 2-1 conflict."""
    Label.objects.bulk_create(
        [Label(video=video, user=user, value=value) for video in videos for user, value in zip(users, (True, False, True))]
    )


def analyze_labeling_tables() -> None:
    """Planner statistics as autovacuum would leave them. A test writes its rows inside one
    transaction, where autovacuum never runs: on tables it has never analyzed the planner
    guesses sizes, and a guess once hashed the queue's ordered candidates (aid order came
    back) or joined the consensus view for every video per row (a statement timeout)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_video; ANALYZE labeling_label; ANALYZE labeling_review; "
                       "ANALYZE labeling_reviewrequest; ANALYZE labeling_videolabelstats")
