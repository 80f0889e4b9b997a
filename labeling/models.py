"""The corpus and its labels. Consensus is derived (a database view), never stored twice."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.timestamped import TimestampedModel


BVID_PATTERN = r"^BV[0-9A-Za-z]{10}$"


class Video(TimestampedModel):
    """One Bilibili video, as imported from the archive."""

    aid = models.BigIntegerField(unique=True, help_text="Bilibili numeric id (av number)")
    bvid = models.CharField(
        max_length=16,
        blank=True,
        validators=[RegexValidator(BVID_PATTERN, "a BV id is 'BV' followed by 10 letters or digits")],
        help_text="Bilibili BV id, e.g. BV1xx411c7mD",
    )
    title = models.TextField()
    description = models.TextField(blank=True)
    tags = models.TextField(blank=True, help_text="Comma separated, as upstream")
    uploader_mid = models.BigIntegerField(null=True, blank=True)
    uploader_name = models.CharField(max_length=100, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds")
    cover_url = models.URLField(max_length=500, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="The imported record, untouched")

    class Meta:
        ordering = ["aid"]
        constraints = [
            models.CheckConstraint(condition=Q(aid__gt=0), name="video_aid_positive"),
            models.UniqueConstraint(fields=["bvid"], condition=~Q(bvid=""), name="video_bvid_unique"),
            models.CheckConstraint(condition=Q(bvid="") | Q(bvid__regex=BVID_PATTERN), name="video_bvid_format"),
        ]
        indexes = [models.Index(fields=["published_at"], name="video_published_idx")]

    def __str__(self) -> str:
        return f"av{self.aid} {self.title[:40]}"

    @property
    def bilibili_url(self) -> str:
        return f"https://www.bilibili.com/video/{self.bvid}" if self.bvid else f"https://www.bilibili.com/video/av{self.aid}"

    @property
    def tag_list(self) -> list[str]:
        return [tag.strip() for tag in self.tags.replace("，", ",").split(",") if tag.strip()]


class LabelSource(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model"
    IMPORT = "import", "Import"


# Sources whose labels are votes: people, live or imported. A model's label is kept in the
# history but never votes (it would feed its own training targets back into the datasets).
# The ``labeling_effectivelabel`` view (migration 0006) holds the same list.
VOTING_SOURCES = (LabelSource.HUMAN, LabelSource.IMPORT)


def _yes_no(value: bool | None) -> str:
    return "yes" if value else "no"


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "(unsaved)"


class Label(models.Model):
    """A user's answer for a video. Append only: the latest non-retracted one counts.

    Undo sets ``retracted_at`` instead of deleting, so the history stays complete.
    No ``updated_at``: a label is never edited, only retracted.
    """

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="labels")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="labels")
    value = models.BooleanField(help_text="True: an in-scope vocal-synth work")
    source = models.CharField(max_length=10, choices=LabelSource.choices, default=LabelSource.HUMAN)
    created_at = models.DateTimeField(auto_now_add=True)
    retracted_at = models.DateTimeField(null=True, blank=True, help_text="Set by undo; the label no longer counts")
    guideline = models.ForeignKey(
        "Guideline", null=True, blank=True, on_delete=models.PROTECT, related_name="labels",
        help_text="The guideline version shown when the label was made (NULL: none published, or imported)",
    )
    bulk_operation = models.ForeignKey(
        "BulkLabelOperation", null=True, blank=True, on_delete=models.PROTECT, related_name="labels",
        help_text="The bulk labeling that wrote it (its filter is kept there)",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(source__in=LabelSource.values), name="label_source_valid"),
            # An imported row is the old system's (video, user, time): importing the same file
            # again meets this index (ON CONFLICT DO NOTHING) instead of adding a second label.
            models.UniqueConstraint(
                fields=["video", "user", "created_at"], condition=Q(source="import"), name="label_import_once"
            ),
        ]
        indexes = [
            # DISTINCT ON (video, user) ... ORDER BY created_at DESC: the effective-label scan.
            models.Index(
                fields=["video", "user", "-created_at", "-id"],
                condition=Q(retracted_at__isnull=True),
                name="label_effective_idx",
            ),
            # "Unlabeled by me" anti-join, progress counters and undo.
            models.Index(
                fields=["user", "-created_at"], condition=Q(retracted_at__isnull=True), name="label_user_recent_idx"
            ),
        ]

    def __str__(self) -> str:
        # No video here: the admin shows labels under their video, and ``video_id`` is the
        # internal id, not the aid a reader would recognise.
        undone = f", undone {_when(self.retracted_at)}" if self.retracted_at else ""
        return f"{self.user}: {_yes_no(self.value)} ({self.get_source_display().lower()}) at {_when(self.created_at)}{undone}"

    @property
    def is_vote(self) -> bool:
        """Whether this label can be an effective label (see ``VOTING_SOURCES``)."""
        return self.source in VOTING_SOURCES


class Review(models.Model):
    """A reviewer's final answer for a conflicted video; the latest one overrides the vote."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    value = models.BooleanField()
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["video", "-created_at", "-id"], name="review_latest_idx")]

    def __str__(self) -> str:
        return f"{self.reviewer}: review {_yes_no(self.value)} at {_when(self.created_at)}"


class ReviewRequest(models.Model):
    """A request that a reviewer look at a video even though its labelers may agree
    (e.g. a model ranks its label as likely wrong), with the reason shown to the
    reviewer. It is resolved by the next review of the video."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="review_requests")
    reason = models.TextField()
    source = models.CharField(max_length=50, help_text="What asked for it, e.g. label_issues")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_requests"
    )
    resolved_by = models.ForeignKey(
        Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="resolved_requests"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="reviewrequest_reason_not_empty"),
            # At most one open request per video (a second request adds nothing to the queue).
            models.UniqueConstraint(
                fields=["video"], condition=Q(resolved_at__isnull=True), name="reviewrequest_one_open_per_video"
            ),
        ]
        indexes = [
            # The review queue: open requests, oldest first.
            models.Index(fields=["created_at"], condition=Q(resolved_at__isnull=True), name="reviewrequest_open_idx"),
        ]

    def __str__(self) -> str:
        return f"review request for {self.video_id}: {self.reason[:40]}"


class EffectiveLabel(models.Model):
    """Read-only row of the ``labeling_effectivelabel`` view: each user's latest
    non-retracted human or imported label per video (a model's label never counts, see
    ``VOTING_SOURCES``). The one definition of "effective" that consensus, agreement,
    dataset builds and the pages all read."""

    label = models.OneToOneField(Label, primary_key=True, on_delete=models.DO_NOTHING, related_name="+")
    video = models.ForeignKey(Video, on_delete=models.DO_NOTHING, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, related_name="+")
    value = models.BooleanField()
    source = models.CharField(max_length=10, choices=LabelSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "labeling_effectivelabel"


class VideoConsensus(models.Model):
    """Read-only row of the ``labeling_videoconsensus`` view: one per video.

    Effective label = each user's latest non-retracted human label; the vote is their
    majority; the latest review overrides it. A video is inconsistent when effective
    labels disagree and no review resolved it. Computed set-based in SQL (see the
    migration), so any number of videos costs one query.
    """

    video = models.OneToOneField(Video, primary_key=True, on_delete=models.DO_NOTHING, related_name="consensus")
    positive_votes = models.IntegerField()
    negative_votes = models.IntegerField()
    review = models.ForeignKey(Review, null=True, on_delete=models.DO_NOTHING, related_name="+")
    review_value = models.BooleanField(null=True)
    value = models.BooleanField(null=True, help_text="Consensus; null when unlabeled or tied without review")
    is_tie = models.BooleanField()
    is_inconsistent = models.BooleanField()
    total_votes = models.IntegerField(help_text="Effective labels on the video")
    agreement = models.FloatField(null=True, help_text="Share of effective labels that agree with the majority")
    last_labeled_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "labeling_videoconsensus"


class Guideline(models.Model):
    """One published version of the labeling guideline (Markdown), shown beside the card.

    Versions are append-only: editing publishes version N+1, and every label records the
    version its labeler was shown (``Label.guideline``). The latest is the current one.
    """

    version = models.PositiveIntegerField(unique=True)
    body = models.TextField(help_text="Markdown; raw HTML is shown as text")
    change_note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.CheckConstraint(condition=Q(version__gt=0), name="guideline_version_positive"),
            models.CheckConstraint(condition=~Q(body=""), name="guideline_body_not_empty"),
        ]

    def __str__(self) -> str:
        return f"guideline v{self.version}"


class PassReason(models.TextChoices):
    SKIP = "skip", "Skipped"
    UNSURE = "unsure", "Unsure"


class LabelPass(TimestampedModel):
    """A video a labeler passed on instead of voting: skipped, or answered "unsure"
    (with an optional comment reviewers see). Persisted, so the queue does not serve it
    to them again after logout; one row per (user, video), the latest pass wins. A pass
    is not a vote: consensus and agreement never count it."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="passes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="label_passes")
    reason = models.CharField(max_length=10, choices=PassReason.choices)
    comment = models.TextField(blank=True)
    guideline = models.ForeignKey(Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "video"], name="labelpass_one_per_user_video"),
            models.CheckConstraint(condition=Q(reason__in=PassReason.values), name="labelpass_reason_valid"),
        ]
        indexes = [
            # Reviewers: the unsure answers of a video, and the list of unsure videos.
            models.Index(fields=["video"], condition=Q(reason="unsure"), name="labelpass_unsure_video_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.reason} on {self.video_id}"


class LabelerPreferences(TimestampedModel):
    """A labeler's own settings: which physical keys (``KeyboardEvent.code``) answer."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labeler_preferences")
    keys = models.JSONField(
        default=dict, blank=True,
        help_text='Action → KeyboardEvent.code, e.g. {"yes": "KeyJ", "no": "KeyF"}; missing actions use the defaults',
    )

    def __str__(self) -> str:
        return f"labeling preferences of {self.user}"


class BulkLabelOperation(models.Model):
    """The audit row of one bulk labeling: who labeled which filtered set, with what
    value, and how many labels it wrote (as ``import`` labels under ``created_by``)."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    value = models.BooleanField()
    filter = models.JSONField(help_text="The filter as submitted (uploader, tag, title search)")
    description = models.TextField(help_text="The filter in words, as previewed")
    previewed_count = models.PositiveIntegerField(help_text="Videos the confirmed preview counted")
    labels_written = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"bulk label {self.pk}: {_yes_no(self.value)} on {self.labels_written} videos"


class VideoLabelStats(models.Model):
    """Each video's votes as ``labeling_videoconsensus`` computes them, kept up to date by
    PostgreSQL triggers (migration 0010) on every write of labels, reviews and videos —
    statement-level, so a million-row import recomputes each touched video once. The
    queues and counters read this table through its indexes instead of the view.
    Never written from Python."""

    video = models.OneToOneField(Video, primary_key=True, on_delete=models.CASCADE, related_name="label_stats")
    aid = models.BigIntegerField(help_text="The video's aid, copied: the unlabeled queue's order")
    queue_key = models.IntegerField(help_text="Random, fixed at creation: where a random walk of the queue starts")
    positive_votes = models.IntegerField(default=0)
    negative_votes = models.IntegerField(default=0)
    total_votes = models.IntegerField(default=0)
    voter_ids = ArrayField(models.BigIntegerField(), default=list, help_text="Users with an effective label, sorted")
    yes_voter_ids = ArrayField(
        models.BigIntegerField(), default=list, help_text="Users whose effective label is yes, sorted (migration 0011)"
    )
    review_value = models.BooleanField(null=True, help_text="The latest review's answer; null: never reviewed")
    is_inconsistent = models.BooleanField(default=False)
    review_requested = models.BooleanField(default=False, help_text="An open ReviewRequest exists")
    agreement = models.FloatField(null=True)
    low_agreement_tier = models.SmallIntegerField(
        null=True, help_text="The low-agreement queue's order: open conflicts by agreement, then the rest; null: no votes"
    )
    last_labeled_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Unlabeled queue: closest to the overlap target first, then aid (its head).
            models.Index(fields=["total_votes", "aid"], name="labelstats_unlabeled_idx"),
            # Unlabeled (random start) and random queues: a walk from a random key per vote count.
            models.Index(fields=["total_votes", "queue_key"], name="labelstats_random_idx"),
            # Low-agreement queue: by tier, from a random key within it.
            models.Index(
                fields=["low_agreement_tier", "queue_key"], condition=Q(low_agreement_tier__isnull=False),
                name="labelstats_low_agree_idx",
            ),
            # Review queue: open conflicts and requested reviews, by votes / recency.
            models.Index(
                fields=["-total_votes", "aid"], condition=Q(is_inconsistent=True) | Q(review_requested=True),
                name="labelstats_conflicts_idx",
            ),
            models.Index(
                fields=["-last_labeled_at", "aid"], condition=Q(is_inconsistent=True) | Q(review_requested=True),
                name="labelstats_recent_conflict_idx",
            ),
            models.Index(fields=["aid"], condition=Q(review_requested=True), name="labelstats_requested_idx"),
            # A pair's disagreements: the videos both voted on (``voter_ids @> ARRAY[a, b]``).
            GinIndex(fields=["voter_ids"], name="labelstats_voters_gin"),
        ]

    def __str__(self) -> str:
        return f"votes of {self.video_id}: {self.positive_votes} yes, {self.negative_votes} no"


class VoteCountVideos(models.Model):
    """How many videos have exactly ``total_votes`` effective labels (trigger-maintained
    from ``VideoLabelStats``): "videos still needing votes" without counting them."""

    total_votes = models.IntegerField(primary_key=True)
    videos = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.videos} videos with {self.total_votes} votes"


class LabelerVoteCountVideos(models.Model):
    """Per labeler: how many of the videos they voted on have exactly ``total_votes``
    effective labels (trigger-maintained from ``VideoLabelStats.voter_ids``): their
    total and what they did among the videos still needing votes, without a scan."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    total_votes = models.IntegerField()
    videos = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "total_votes"], name="labelervotecount_one_per_bucket")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.videos} videos with {self.total_votes} votes"


class LabelReservation(models.Model):
    """A video handed to a labeler and not yet answered: others are not served it (unless
    the overlap target needs them) until it is answered, passed or ``expires_at``."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=20, help_text="The queue that served it")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["video", "user"], name="labelreservation_one_per_user_video")]
        indexes = [
            models.Index(fields=["user", "created_at"], name="labelreservation_user_idx"),
            models.Index(fields=["expires_at"], name="labelreservation_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} holds {self.video_id} until {_when(self.expires_at)}"


class LabelerPairStats(models.Model):
    """Two labelers' 2×2 table over the videos both effectively labeled (Cohen's κ reads
    it), kept by the triggers of ``VideoLabelStats`` (migration 0011): each changed video
    takes its old pair cells out and puts its new ones in. Never written from Python.
    A pair whose videos all went away keeps a row of zeros."""

    user_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    user_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    both_yes = models.BigIntegerField(default=0)
    a_yes_b_no = models.BigIntegerField(default=0)
    a_no_b_yes = models.BigIntegerField(default=0)
    both_no = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_a", "user_b"], name="labelerpairstats_one_per_pair"),
            models.CheckConstraint(condition=Q(user_a__lt=models.F("user_b")), name="labelerpairstats_ordered_pair"),
        ]

    def __str__(self) -> str:
        agree, differ = self.both_yes + self.both_no, self.a_yes_b_no + self.a_no_b_yes
        return f"{self.user_a_id}/{self.user_b_id}: {agree} agree, {differ} differ"


class LabelerConsensusStats(models.Model):
    """Per labeler: videos with their effective label, those where the consensus is more
    than their own vote (≥ 2 effective labels or a review, and not an open tie), and how
    many of those match it. Kept by the triggers of ``VideoLabelStats`` (migration 0011)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+")
    labeled = models.BigIntegerField(default=0)
    compared = models.BigIntegerField(default=0)
    agreed = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.agreed} of {self.compared} match the consensus"


class ReviewCounts(models.Model):
    """The review queue's totals without a search, one row (``id = 1``): videos with an open
    conflict (``is_inconsistent``) and with an open review request, kept by the triggers
    of ``VideoLabelStats`` (migration 0011)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    conflicts = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="reviewcounts_single_row")]

    def __str__(self) -> str:
        return f"{self.conflicts} open conflicts, {self.requests} review requests"
