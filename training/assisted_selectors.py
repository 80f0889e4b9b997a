"""Reads of model-assisted labeling: which video a labeler sees next when a model version
chooses, and where the version disagrees with the people.

Three queues, each against one model version (by default the production version of a
registered model) and each a fixed number of queries per card whatever the number of
videos, predictions or labels:

- **uncertain**: the version's predictions nearest its threshold first (``ORDER BY
  margin`` walks ``prediction_version_margin_idx``), of videos with no consensus yet that
  the labeler has not answered;
- **disagree**: videos whose consensus (people's labels and reviews: the consensus view,
  where a model never votes) says the opposite of the version's decision, most confident
  prediction first, that the labeler has not answered (a second opinion);
- **diverse**: greedy farthest-point sampling over unlabeled videos, with pgvector cosine
  distances between the vectors the version scored (``Prediction.embedding``): of a
  bounded sample of unlabeled videos, the one farthest from its nearest labeled or
  recently served video (bounds below).

Predictions are read, never written as labels: the labeler's answer is a human label
written by ``labeling.services.label_create``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, models
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from datasets.models import Embedding
from labeling.models import VOTING_SOURCES, Label, Video
from training.models import AssistedLabelingPreference, ModelVersion, Prediction

#: Diverse queue: how many unlabeled scored videos are compared per card (consecutive
#: video ids from a random starting point, wrapping around), ...
DIVERSE_CANDIDATES = 200
#: ... against the videos of the latest labels (by anyone) ...
DIVERSE_RECENT_LABELS = 500
#: ... and the labeler's recently served videos (kept in their session). At most
#: 200 × (500 + 50) cosine distances per card, whatever the corpus size.
DIVERSE_RECENT_SERVED = 50


class AssistedMode(models.TextChoices):
    UNCERTAIN = "uncertain", "Most uncertain"
    DISAGREE = "disagree", "Model disagrees with consensus"
    DIVERSE = "diverse", "Diverse (far from what is labeled)"


@dataclass(frozen=True)
class AssistedCard:
    """The next video of an assisted queue with the version's prediction of it.
    ``nearest_distance`` (diverse queue only): cosine distance to the nearest labeled or
    recently served video, None when there was none to compare with."""

    video: Video
    prediction: Prediction | None
    threshold: float
    nearest_distance: float | None = None

    @property
    def says_yes(self) -> bool | None:
        return None if self.prediction is None else self.prediction.probability >= self.threshold


def _answered_by(user) -> Exists:
    """The user's own vote on the prediction's video (as labeling's "unlabeled by me")."""
    return Exists(
        Label.objects.filter(
            user=user, video_id=OuterRef("video_id"), retracted_at__isnull=True, source__in=VOTING_SOURCES
        )
    )


def _predictions(version: ModelVersion) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_version=version)


def _disagrees_with_consensus(version: ModelVersion) -> Q:
    """Consensus yes and the version says no, or consensus no and it says yes."""
    says_yes = Q(probability__gte=version.threshold)
    return (Q(video__consensus__value=True) & ~says_yes) | (Q(video__consensus__value=False) & says_yes)


def uncertain_queue(*, user, version: ModelVersion, exclude_video_ids: Iterable[int] = ()) -> QuerySet[Prediction]:
    """The version's predictions of videos with no consensus yet (unlabeled, or tied
    without a review) that ``user`` has not answered, nearest the threshold first."""
    # No consensus: no review and as many yes as no votes (none at all, or a tie), read
    # from the trigger-kept vote counts (plain columns the planner estimates well) rather
    # than the consensus view.
    return (
        _predictions(version)
        .filter(video__label_stats__review_value__isnull=True,
                video__label_stats__positive_votes=F("video__label_stats__negative_votes"))
        .exclude(video_id__in=list(exclude_video_ids))
        .filter(~_answered_by(user))
        .select_related("video")
        .order_by("margin", "video_id")
    )


def disagree_queue(*, user, version: ModelVersion, exclude_video_ids: Iterable[int] = ()) -> QuerySet[Prediction]:
    """Videos whose consensus differs from the version's decision that ``user`` has not
    answered, the most confident prediction (largest margin) first."""
    return (
        _predictions(version)
        .filter(_disagrees_with_consensus(version))
        .exclude(video_id__in=list(exclude_video_ids))
        .filter(~_answered_by(user))
        .select_related("video")
        .order_by("-margin", "video_id")
    )


_PREDICTIONS, _LABELS, _EMBEDDINGS = Prediction._meta.db_table, Label._meta.db_table, Embedding._meta.db_table

# One statement: a random starting video id, the next DIVERSE_CANDIDATES unlabeled scored
# videos from there (wrapping around; both walks go by the unique (version, video) index),
# the vectors of the anchors (videos of the latest labels and the served ones, as this
# version scored them; MATERIALIZED so they are read once, not per candidate), then each
# candidate's distance to its nearest anchor; the largest wins (no anchor at all: the
# first candidate). Labels as labeling counts them: not retracted, voting sources only.
# The candidates are MATERIALIZED too: on stale statistics the planner once put their
# walk on the inner side of a nested loop over every embedding, re-running it per row
# (a statement timeout in CI at 2,000 videos).
_ELIGIBLE = f"""
    p.model_version_id = %(version)s
    AND p.embedding_id IS NOT NULL
    AND NOT (p.video_id = ANY(%(excluded)s::bigint[]))
    AND NOT EXISTS (
        SELECT 1 FROM {_LABELS} l
        WHERE l.video_id = p.video_id AND l.retracted_at IS NULL AND l.source = ANY(%(voting)s::text[])
    )
"""
_DIVERSE_NEXT = f"""
WITH pivot AS MATERIALIZED (
    SELECT min(video_id) + floor(%(start)s * (max(video_id) - min(video_id) + 1))::bigint AS video_id
    FROM {_PREDICTIONS} WHERE model_version_id = %(version)s
),
candidates AS MATERIALIZED (
    SELECT * FROM (
        (SELECT p.id, p.video_id, p.embedding_id FROM {_PREDICTIONS} p
         WHERE {_ELIGIBLE} AND p.video_id >= (SELECT video_id FROM pivot)
         ORDER BY p.video_id LIMIT %(sample)s)
        UNION ALL
        (SELECT p.id, p.video_id, p.embedding_id FROM {_PREDICTIONS} p
         WHERE {_ELIGIBLE} AND p.video_id < (SELECT video_id FROM pivot)
         ORDER BY p.video_id LIMIT %(sample)s)
    ) both_sides
    LIMIT %(sample)s
),
anchor_videos AS (
    SELECT recent.video_id FROM (
        SELECT l.video_id FROM {_LABELS} l
        WHERE l.retracted_at IS NULL AND l.source = ANY(%(voting)s::text[])
        ORDER BY l.id DESC
        LIMIT %(recent_labels)s
    ) recent
    UNION
    SELECT unnest(%(served)s::bigint[])
),
anchors AS MATERIALIZED (
    SELECT e.vector
    FROM anchor_videos a
    JOIN {_PREDICTIONS} p ON p.model_version_id = %(version)s AND p.video_id = a.video_id
    JOIN {_EMBEDDINGS} e ON e.id = p.embedding_id
)
SELECT c.id, (SELECT min(ce.vector <=> a.vector) FROM anchors a) AS distance
FROM candidates c
JOIN {_EMBEDDINGS} ce ON ce.id = c.embedding_id
ORDER BY distance DESC NULLS FIRST, c.video_id
LIMIT 1
"""


def diverse_next(*, version: ModelVersion, exclude_video_ids: Iterable[int] = (),
                 recent_video_ids: Iterable[int] = (), sample_start: float | None = None) -> tuple[int, float | None] | None:
    """(prediction id, cosine distance to its nearest anchor) of the diverse queue's next
    video, or None when no unlabeled video has a vector under this version. Unlabeled
    means no vote by anyone (so never one ``user`` answered). ``sample_start`` in [0, 1)
    places the candidate window among the version's video ids (random by default)."""
    start = random.random() if sample_start is None else min(max(float(sample_start), 0.0), 0.999999)
    params = {
        "version": version.pk,
        "excluded": [int(video_id) for video_id in exclude_video_ids],
        "served": [int(video_id) for video_id in recent_video_ids][-DIVERSE_RECENT_SERVED:],
        "voting": [str(source) for source in VOTING_SOURCES],
        "start": start,
        "sample": DIVERSE_CANDIDATES,
        "recent_labels": DIVERSE_RECENT_LABELS,
    }
    with connection.cursor() as cursor:
        cursor.execute(_DIVERSE_NEXT, params)
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


def assisted_queue_next(*, user, version: ModelVersion, mode: str, exclude_video_ids: Iterable[int] = (),
                        recent_video_ids: Iterable[int] = (), sample_start: float | None = None) -> AssistedCard | None:
    """The next card of ``mode``'s queue for ``user`` (skips excluded), or None when the
    queue is empty. One query (uncertain, disagree) or two (diverse)."""
    excluded = list(exclude_video_ids)
    if mode == AssistedMode.DIVERSE:
        chosen = diverse_next(version=version, exclude_video_ids=excluded, recent_video_ids=recent_video_ids,
                              sample_start=sample_start)
        if chosen is None:
            return None
        prediction = Prediction.objects.select_related("video").get(pk=chosen[0])
        return AssistedCard(prediction.video, prediction, version.threshold, nearest_distance=chosen[1])
    queue = disagree_queue if mode == AssistedMode.DISAGREE else uncertain_queue
    prediction = queue(user=user, version=version, exclude_video_ids=excluded).first()
    return None if prediction is None else AssistedCard(prediction.video, prediction, version.threshold)


def assisted_card_for(*, version: ModelVersion, video: Video) -> AssistedCard:
    """A given video's card (after an undo, or when the hint is switched): its prediction
    under ``version`` when it has one (one query)."""
    prediction = _predictions(version).filter(video=video).first()
    return AssistedCard(video, prediction, version.threshold)


def version_is_scored(version: ModelVersion) -> bool:
    """Whether the version has predicted anything yet (one index probe)."""
    return _predictions(version).exists()


class DisagreementOrder(models.TextChoices):
    CONFIDENT = "confident", "Most confident first"
    LEAST_CONFIDENT = "least_confident", "Least confident first"
    AID = "aid", "Video id"


_DISAGREEMENT_ORDERINGS = {
    DisagreementOrder.CONFIDENT: [F("margin").desc(), "video_id"],
    DisagreementOrder.LEAST_CONFIDENT: [F("margin").asc(), "video_id"],
    DisagreementOrder.AID: ["video__aid"],
}


def model_disagreements(version: ModelVersion, *, order: str = DisagreementOrder.CONFIDENT) -> QuerySet[Prediction]:
    """Every video where ``version``'s decision differs from the consensus, each
    prediction with its video and the video's consensus (value, positive and negative
    votes, review) joined: one query per page whatever their number."""
    return (
        _predictions(version)
        .filter(_disagrees_with_consensus(version))
        .select_related("video", "video__consensus")
        .order_by(*_DISAGREEMENT_ORDERINGS.get(order, _DISAGREEMENT_ORDERINGS[DisagreementOrder.CONFIDENT]))
    )


def assisted_hint_shown(user) -> bool:
    """Whether ``user`` asked to see the model's hint on the card (off by default)."""
    return AssistedLabelingPreference.objects.filter(user=user, show_model_hint=True).exists()
