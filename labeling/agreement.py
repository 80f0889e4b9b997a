"""Inter-annotator agreement of the labeling team: read-side selectors and the maths.

Definitions (DESIGN.md §3):

* A user's *effective label* on a video is their latest human (or imported) label that
  has not been retracted (``retracted_at IS NULL``, ordered by ``created_at DESC, id
  DESC``): the ``labeling_effectivelabel`` view, which the consensus view reads too.
  Labels a model wrote (``source = 'model'``) are no rater's answer and count nowhere.
* **Percent agreement** and **Cohen's kappa** are computed for every pair of labelers
  over the videos on which both have an effective label, from the pair's 2×2 table that
  the triggers keep (``LabelerPairStats``, migration 0011) — never a self-join of labels.
* **Fleiss' kappa** is computed over the whole corpus from each video's vote counts
  (videos with at least two effective labels), with a varying number of raters per
  video. The counters and Fleiss read the per-video counts the triggers keep
  (``VideoLabelStats``), not the consensus view: one pass over a narrow table.

Everything is set-based: :func:`agreement_summary` costs a constant number of queries
(four) whatever the number of videos, labels or users; a labeler's page two (their
``LabelerConsensusStats`` row and their pairs). The pure functions
(:func:`cohen_kappa`, :func:`percent_agreement`, :func:`fleiss_kappa`,
:func:`fleiss_kappa_weighted`, :func:`interpret_kappa`) take no database and do exact
rational arithmetic, converting to ``float`` only at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BooleanField, Count, ExpressionWrapper, F, Q, QuerySet, Sum

from labeling.models import (
    VOTING_SOURCES,
    Label,
    LabelerConsensusStats,
    LabelerPairStats,
    Video,
    VideoLabelStats,
)

# --------------------------------------------------------------------------- maths


@dataclass(frozen=True)
class AgreementTable:
    """2×2 contingency table of two raters over their common items.

    Rows are rater A (yes, no), columns rater B (yes, no)::

                    B yes        B no
        A yes   both_yes     a_yes_b_no
        A no    a_no_b_yes   both_no
    """

    both_yes: int = 0
    a_yes_b_no: int = 0
    a_no_b_yes: int = 0
    both_no: int = 0

    @classmethod
    def from_matrix(cls, matrix: Sequence[Sequence[int]]) -> AgreementTable:
        """``[[both_yes, a_yes_b_no], [a_no_b_yes, both_no]]`` → table."""
        (yy, yn), (ny, nn) = matrix
        return cls(int(yy), int(yn), int(ny), int(nn))

    @property
    def n(self) -> int:
        return self.both_yes + self.a_yes_b_no + self.a_no_b_yes + self.both_no

    @property
    def agreements(self) -> int:
        return self.both_yes + self.both_no


TableLike = AgreementTable | Sequence[Sequence[int]]


def _as_table(table: TableLike) -> AgreementTable:
    return table if isinstance(table, AgreementTable) else AgreementTable.from_matrix(table)


def percent_agreement(table: TableLike) -> float | None:
    """Observed agreement as a percentage, 0–100; ``None`` for an empty table."""
    t = _as_table(table)
    if t.n == 0:
        return None
    return float(Fraction(100 * t.agreements, t.n))


def cohen_kappa(table: TableLike) -> float | None:
    """Cohen's kappa of a 2×2 table: κ = (p_o − p_e) / (1 − p_e).

    p_o is the observed agreement, p_e the agreement expected by chance from each
    rater's own marginals: p_e = (A_yes·B_yes + A_no·B_no) / n².

    Returns ``None`` when kappa is undefined:

    * the table is empty (n = 0), or
    * p_e = 1, i.e. both raters gave the *same single answer* to every item (e.g. both
      always "yes"). Then p_o = 1 too and κ = 0/0: there is no variation from which to
      tell agreement from chance. (Two raters who each always give a *different*
      constant answer have p_e = 0 and κ = 0, which is defined.)

    Computed exactly: κ = (n·agreements − S) / (n² − S) with S = Σ_j rowⱼ·colⱼ.
    """
    t = _as_table(table)
    n = t.n
    if n == 0:
        return None
    a_yes, a_no = t.both_yes + t.a_yes_b_no, t.a_no_b_yes + t.both_no
    b_yes, b_no = t.both_yes + t.a_no_b_yes, t.a_yes_b_no + t.both_no
    chance = a_yes * b_yes + a_no * b_no  # p_e · n²
    if chance == n * n:
        return None
    return float(Fraction(n * t.agreements - chance, n * n - chance))


def fleiss_kappa_weighted(histogram: Iterable[tuple[Sequence[int], int]]) -> float | None:
    """Fleiss' kappa from ``(category counts of an item, number of such items)`` pairs.

    The counts of an item are how many raters put it in each category, e.g.
    ``(n_yes, n_no)``; any number of categories works as long as every item lists the
    same ones. The number of raters may vary per item (Fleiss' formula with per-item
    nᵢ); items with fewer than 2 raters carry no agreement information and are
    excluded. With wᵢ the weight (multiplicity) of an item::

        Pᵢ  = Σⱼ nᵢⱼ(nᵢⱼ − 1) / (nᵢ(nᵢ − 1))      agreement among the item's rater pairs
        P̄   = Σᵢ wᵢPᵢ / Σᵢ wᵢ                     mean over items
        pⱼ  = Σᵢ wᵢnᵢⱼ / Σᵢ wᵢnᵢ                  share of all ratings in category j
        P̄e  = Σⱼ pⱼ²
        κ   = (P̄ − P̄e) / (1 − P̄e)

    Returns ``None`` when no item has 2 raters, or when P̄e = 1 (every rating falls in
    one category: κ = 0/0, undefined — as for :func:`cohen_kappa`).
    """
    items = 0
    p_sum = Fraction(0)
    category_totals: list[int] | None = None
    ratings = 0
    for counts, weight in histogram:
        counts = [int(c) for c in counts]
        weight = int(weight)
        n_i = sum(counts)
        if n_i < 2 or weight <= 0:
            continue
        if category_totals is None:
            category_totals = [0] * len(counts)
        elif len(counts) != len(category_totals):
            raise ValueError("every item must list the same number of categories")
        items += weight
        p_sum += weight * Fraction(sum(c * (c - 1) for c in counts), n_i * (n_i - 1))
        ratings += weight * n_i
        for j, c in enumerate(counts):
            category_totals[j] += weight * c
    if items == 0:
        return None
    p_bar = p_sum / items
    p_e = sum(Fraction(total, ratings) ** 2 for total in category_totals)
    if p_e == 1:
        return None
    return float((p_bar - p_e) / (1 - p_e))


def fleiss_kappa(rating_counts: Iterable[Sequence[int]]) -> float | None:
    """Fleiss' kappa from one ``(n_yes, n_no)`` per item (see :func:`fleiss_kappa_weighted`)."""
    return fleiss_kappa_weighted((counts, 1) for counts in rating_counts)


# Landis & Koch (1977), "The measurement of observer agreement for categorical data".
_LANDIS_KOCH = ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"), (1.00, "almost perfect"))


def interpret_kappa(kappa: float | None) -> str:
    """Plain-language strength of agreement per Landis & Koch.

    < 0 poor (worse than chance), 0–0.20 slight, 0.21–0.40 fair, 0.41–0.60 moderate,
    0.61–0.80 substantial, 0.81–1 almost perfect; ``None`` → "undefined".
    """
    if kappa is None:
        return "undefined"
    if kappa < 0:
        return "poor"
    for upper, name in _LANDIS_KOCH:
        if kappa <= upper + 1e-12:
            return name
    return "almost perfect"


# ----------------------------------------------------------------------- selectors

@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two labelers (``user_a_id < user_b_id``) over their common videos."""

    user_a_id: int
    user_a: str
    user_b_id: int
    user_b: str
    table: AgreementTable
    n: int
    percent_agreement: float | None
    kappa: float | None
    interpretation: str

    @classmethod
    def from_table(cls, user_a_id: int, user_a: str, user_b_id: int, user_b: str, table: AgreementTable):
        kappa = cohen_kappa(table)
        return cls(
            user_a_id=user_a_id,
            user_a=user_a,
            user_b_id=user_b_id,
            user_b=user_b,
            table=table,
            n=table.n,
            percent_agreement=percent_agreement(table),
            kappa=kappa,
            interpretation=interpret_kappa(kappa),
        )


def pair_agreement_tables(*, user_id: int | None = None) -> list[PairAgreement]:
    """Every pair of labelers with at least one video both effectively labeled (only the
    pairs of ``user_id`` when given).

    One query over the pairs' 2×2 tables the triggers keep (``LabelerPairStats``: as
    many rows as pairs of labelers, whatever the number of videos), joined to the user
    table for the usernames. Ordered by (user_a_id, user_b_id).
    """
    user_model = get_user_model()
    user_table = connection.ops.quote_name(user_model._meta.db_table)
    username_column = connection.ops.quote_name(user_model._meta.get_field(user_model.USERNAME_FIELD).column)
    only_user = "AND (p.user_a_id = %(user)s OR p.user_b_id = %(user)s)" if user_id is not None else ""
    sql = f"""
        SELECT p.user_a_id, ua.{username_column}, p.user_b_id, ub.{username_column},
               p.both_yes, p.a_yes_b_no, p.a_no_b_yes, p.both_no
        FROM {connection.ops.quote_name(LabelerPairStats._meta.db_table)} p
        JOIN {user_table} ua ON ua.id = p.user_a_id
        JOIN {user_table} ub ON ub.id = p.user_b_id
        WHERE p.both_yes + p.a_yes_b_no + p.a_no_b_yes + p.both_no > 0 {only_user}
        ORDER BY p.user_a_id, p.user_b_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user_id})
        rows = cursor.fetchall()
    return [
        PairAgreement.from_table(a_id, a_name, b_id, b_name, AgreementTable(yy, yn, ny, nn))
        for a_id, a_name, b_id, b_name, yy, yn, ny, nn in rows
    ]


def vote_histogram() -> list[tuple[int, int, int]]:
    """``(positive_votes, negative_votes, number_of_videos)`` for videos with ≥ 2 effective labels. One query."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT positive_votes, negative_votes, count(*)
            FROM labeling_videolabelstats
            WHERE total_votes >= 2
            GROUP BY 1, 2
            ORDER BY 1, 2
            """
        )
        return [(int(yes), int(no), int(count)) for yes, no, count in cursor.fetchall()]


@dataclass(frozen=True)
class FleissSummary:
    kappa: float | None
    interpretation: str
    items: int  # videos with at least two effective labels
    ratings: int  # effective labels on those videos


def overall_fleiss() -> FleissSummary:
    """Fleiss' kappa over the corpus, from the vote histogram (one query, no per-video list)."""
    histogram = vote_histogram()
    kappa = fleiss_kappa_weighted(((yes, no), count) for yes, no, count in histogram)
    return FleissSummary(
        kappa=kappa,
        interpretation=interpret_kappa(kappa),
        items=sum(count for _, _, count in histogram),
        ratings=sum((yes + no) * count for yes, no, count in histogram),
    )


@dataclass(frozen=True)
class CorpusCounts:
    """The corpus counters. Every labeled video is in exactly one of consensus yes,
    consensus no and open ties: ``consensus_positive + consensus_negative + ties ==
    labeled_videos`` (a tie a review settled counts under the review's answer)."""

    videos: int
    labeled_videos: int  # videos with at least one effective label
    labels: int  # non-retracted human (and imported) labels, history included
    effective_labels: int  # one per (video, user) at most
    consensus_positive: int  # labeled videos whose consensus is "yes" (a review overrides the vote)
    consensus_negative: int
    ties: int  # open ties: votes tied and no review settled them
    ties_settled: int  # votes tied, settled by a review (counted in positive/negative)
    inconsistent: int  # effective labels disagree and no review resolved it
    reviewed: int  # videos with at least one review


def corpus_counts() -> CorpusCounts:
    """Corpus-wide counters: one aggregate over the per-video vote counts the triggers
    keep (``VideoLabelStats``, the consensus view's numbers) plus one label count."""
    labeled = Q(total_votes__gt=0)
    tie = Q(total_votes__gt=0, positive_votes=F("negative_votes"))
    reviewed = Q(review_value__isnull=False)
    consensus_yes = Q(review_value=True) | (~reviewed & Q(positive_votes__gt=F("negative_votes")))
    consensus_no = Q(review_value=False) | (~reviewed & Q(negative_votes__gt=F("positive_votes")))
    totals = VideoLabelStats.objects.aggregate(
        videos=Count("pk"),
        labeled_videos=Count("pk", filter=labeled),
        effective_labels=Sum("total_votes", default=0),
        consensus_positive=Count("pk", filter=labeled & consensus_yes),
        consensus_negative=Count("pk", filter=labeled & consensus_no),
        ties=Count("pk", filter=tie & ~reviewed),
        ties_settled=Count("pk", filter=tie & reviewed),
        inconsistent=Count("pk", filter=Q(is_inconsistent=True)),
        reviewed=Count("pk", filter=reviewed),
    )
    labels = Label.objects.filter(retracted_at__isnull=True, source__in=VOTING_SOURCES).count()
    return CorpusCounts(labels=labels, **{key: int(value) for key, value in totals.items()})


@dataclass(frozen=True)
class AgreementSummary:
    counts: CorpusCounts
    pairs: list[PairAgreement]
    fleiss: FleissSummary


def agreement_summary() -> AgreementSummary:
    """Everything the agreement dashboard shows, in four queries whatever the corpus size."""
    return AgreementSummary(counts=corpus_counts(), pairs=pair_agreement_tables(), fleiss=overall_fleiss())


# ------------------------------------------------------------- one labeler, one pair


@dataclass(frozen=True)
class PeerAgreement:
    """One labeler's agreement with another, seen from the first."""

    other_id: int
    other: str
    n: int
    percent_agreement: float | None
    kappa: float | None
    interpretation: str
    pair: PairAgreement


@dataclass(frozen=True)
class ConsensusAgreement:
    """How often a labeler's effective labels match the consensus, over the videos where
    the consensus is more than their own vote: at least two effective labels, or a review."""

    compared: int
    agreed: int

    @property
    def percent(self) -> float | None:
        return float(Fraction(100 * self.agreed, self.compared)) if self.compared else None


@dataclass(frozen=True)
class LabelerAgreement:
    user_id: int
    labeled: int  # videos with an effective label of theirs
    consensus: ConsensusAgreement
    peers: list[PeerAgreement]


def consensus_agreement(user_id: int) -> tuple[int, ConsensusAgreement]:
    """``(labeled, agreement with consensus)`` of one labeler: one row the triggers keep
    (``LabelerConsensusStats``, the consensus view's rule), however many labels."""
    row = LabelerConsensusStats.objects.filter(user_id=user_id).values_list("labeled", "compared", "agreed").first()
    labeled, compared, agreed = row or (0, 0, 0)
    return int(labeled), ConsensusAgreement(compared=int(compared), agreed=int(agreed))


def labeler_agreement(user_id: int) -> LabelerAgreement:
    """A labeler's own view: videos labeled, agreement with consensus and Cohen's κ with
    each labeler they share videos with. Two queries."""
    labeled, consensus = consensus_agreement(user_id)
    peers = []
    for pair in pair_agreement_tables(user_id=user_id):
        mine_first = pair.user_a_id == user_id
        peers.append(PeerAgreement(
            other_id=pair.user_b_id if mine_first else pair.user_a_id,
            other=pair.user_b if mine_first else pair.user_a,
            n=pair.n, percent_agreement=pair.percent_agreement, kappa=pair.kappa,
            interpretation=pair.interpretation, pair=pair,
        ))
    return LabelerAgreement(user_id=user_id, labeled=labeled, consensus=consensus, peers=peers)


# Up to this many common videos, a page of a pair's disagreements is found through the GIN
# index on voter_ids and sorted (~20 ms at 20k); above, by walking the videos in aid order
# until 50 differ (those pairs differ often enough to stop early). The planner cannot tell:
# it misjudges how many common videos differ, and walked a million videos for a pair with 5.
SPARSE_PAIR_VIDEOS = 20_000


class PairDisagreements:
    """The videos where the effective labels of two labelers differ, by aid, each with
    ``a_value`` and ``b_value`` and its consensus: what a ``Paginator`` pages. The count is
    the pair's off-diagonal cells (``LabelerPairStats``, one row); a page is one query over
    the vote counts (``voter_ids @> {a, b}``), never a scan of the labels."""

    def __init__(self, user_a_id: int, user_b_id: int):
        self.user_a_id, self.user_b_id = user_a_id, user_b_id
        self._cells: tuple[int, int] | None = None

    def _pair_cells(self) -> tuple[int, int]:
        """``(videos both labeled, videos they answered differently)``, read once."""
        if self._cells is None:
            low, high = sorted((self.user_a_id, self.user_b_id))
            row = (
                LabelerPairStats.objects.filter(user_a_id=low, user_b_id=high)
                .values_list("both_yes", "a_yes_b_no", "a_no_b_yes", "both_no")
                .first()
            )
            both_yes, a_yes_b_no, a_no_b_yes, both_no = row or (0, 0, 0, 0)
            self._cells = (both_yes + a_yes_b_no + a_no_b_yes + both_no, a_yes_b_no + a_no_b_yes)
        return self._cells

    def count(self) -> int:
        return self._pair_cells()[1]

    def __len__(self) -> int:
        return self.count()

    def _differing(self, rows: QuerySet, prefix: str = "") -> QuerySet:
        """``rows`` (stats, or videos through ``prefix``) where both voted and only one said yes,
        annotated with ``a_value`` and ``b_value``."""

        def says_yes(user_id: int):
            return ExpressionWrapper(Q(**{f"{prefix}yes_voter_ids__contains": [user_id]}), output_field=BooleanField())

        return (
            rows.filter(**{f"{prefix}voter_ids__contains": [self.user_a_id, self.user_b_id]})
            .annotate(a_value=says_yes(self.user_a_id), b_value=says_yes(self.user_b_id))
            .exclude(a_value=F("b_value"))
        )

    def __getitem__(self, index: slice) -> list[Video]:
        common, _ = self._pair_cells()
        if common <= SPARSE_PAIR_VIDEOS:
            page = self._differing(VideoLabelStats.objects.all()).order_by("aid").values("video_id")[index]
            videos = self._differing(Video.objects.filter(pk__in=page), "label_stats__")
        else:
            videos = self._differing(Video.objects.all(), "label_stats__")
        videos = videos.select_related("consensus").order_by("aid")
        return list(videos if common <= SPARSE_PAIR_VIDEOS else videos[index])


def pair_disagreements(user_a_id: int, user_b_id: int) -> PairDisagreements:
    """What the pair drill-down pages: see :class:`PairDisagreements`."""
    return PairDisagreements(user_a_id, user_b_id)
