"""factory_boy factories for the labeling models, shared by every app's tests.

``created_at`` is ``auto_now_add`` on Label and Review, so the database value is set by
a follow-up UPDATE when a test passes one: ``LabelFactory(created_at=some_time)``.
Users get groups by name: ``UserFactory(groups=["labelers"])`` or ``LabelerFactory()``.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from core.roles import ADMINS, LABELERS, REVIEWERS
from labeling.models import Label, LabelSource, Review, Video

TEST_PASSWORD = "pw-for-tests-1"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _bvid(n: int) -> str:
    digits = []
    for _ in range(9):
        n, digit = divmod(n, 58)
        digits.append(_BASE58[digit])
    return "BV1" + "".join(reversed(digits))


def add_groups(user, groups) -> None:
    """Group names (created when missing) or Group objects."""
    for group in groups:
        if isinstance(group, str):
            group = Group.objects.get_or_create(name=group)[0]
        user.groups.add(group)


class UserFactory(DjangoModelFactory):
    """A user without groups unless given: ``UserFactory(groups=["reviewers"])``."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(TEST_PASSWORD)

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            add_groups(self, extracted)


class LabelerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"labeler-{n}")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create:
            add_groups(self, [LABELERS] if extracted is None else extracted)


class ReviewerFactory(UserFactory):
    username = factory.Sequence(lambda n: f"reviewer-{n}")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create:
            add_groups(self, [REVIEWERS] if extracted is None else extracted)


class AdminUserFactory(UserFactory):
    """A member of ``admins`` with admin-site access (not a superuser)."""

    username = factory.Sequence(lambda n: f"admin-{n}")
    is_staff = True

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create:
            add_groups(self, [ADMINS] if extracted is None else extracted)


class VideoFactory(DjangoModelFactory):
    class Meta:
        model = Video

    aid = factory.Sequence(lambda n: 100_000_000 + n)
    bvid = factory.LazyAttribute(lambda video: _bvid(video.aid))
    title = factory.Sequence(lambda n: f"【洛天依原创】测试曲{n}")
    description = "作词：某人\n作曲：某人"
    tags = "洛天依,VOCALOID,原创曲"
    uploader_mid = factory.Sequence(lambda n: 1000 + n)
    uploader_name = factory.Sequence(lambda n: f"测试P{n}")
    published_at = factory.Sequence(lambda n: timezone.now() - timedelta(days=n % 1000, hours=n % 24))
    duration = 210
    cover_url = factory.LazyAttribute(lambda video: f"https://i0.hdslb.com/bfs/archive/{video.aid:040x}.jpg")
    raw = factory.LazyAttribute(lambda video: {"aid": video.aid, "title": video.title})


class _CreatedAtMixin:
    """Honour an explicit ``created_at`` despite ``auto_now_add``."""

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        created_at = kwargs.pop("created_at", None)
        instance = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            model_class.objects.filter(pk=instance.pk).update(created_at=created_at)
            instance.created_at = created_at
        return instance


class LabelFactory(_CreatedAtMixin, DjangoModelFactory):
    class Meta:
        model = Label

    video = factory.SubFactory(VideoFactory)
    user = factory.SubFactory(LabelerFactory)
    value = True
    source = LabelSource.HUMAN
    created_at = None  # now (auto_now_add) unless given
    retracted_at = None


class ReviewFactory(_CreatedAtMixin, DjangoModelFactory):
    class Meta:
        model = Review

    video = factory.SubFactory(VideoFactory)
    reviewer = factory.SubFactory(ReviewerFactory)
    value = True
    note = ""
    created_at = None
