"""Reads of the training app: a run's test-split mistakes (error analysis).

The mistakes come from the run's ``predictions.npz`` artifact (``training.predictions``),
never from training again; who the videos are and what their labelers say now comes
from the labeling app's consensus view. Two queries whatever the number of mistakes:
the run (with whether it recorded predictions), then the consensus rows of the page's
videos with the videos joined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef

from experiments import services as tracking
from experiments.models import Artifact, Run
from experiments.services.validation import clean_id
from labeling.models import Video, VideoConsensus
from labeling.selectors import consensus_by_aid
from training.predictions import PREDICTIONS_PATH, Predictions, PredictionsFileError, predictions_read

FALSE_POSITIVE = "fp"
FALSE_NEGATIVE = "fn"
MISTAKE_KINDS = (FALSE_POSITIVE, FALSE_NEGATIVE)
#: Mistakes per page unless told otherwise (None: all of them).
MISTAKES_PAGE_SIZE = 100


class MistakeOrder(models.TextChoices):
    """How mistakes are sorted. Confidence is the probability the model gave the class
    it wrongly chose: ``p`` for a false positive, ``1 - p`` for a false negative."""

    MOST_CONFIDENT = "most_confident", "Most confident first"
    LEAST_CONFIDENT = "least_confident", "Least confident first"


class RunPredictionsMissing(Exception):
    """The run has no readable predictions file; the message says why and what to do."""


@dataclass(frozen=True)
class Mistake:
    """One test row the run got wrong, with the video as it is now."""

    aid: int
    kind: str  # FALSE_POSITIVE or FALSE_NEGATIVE
    probability: float  # of the positive class
    confidence: float  # of the (wrong) predicted class
    version_label: bool  # the label the dataset version froze (the consensus then)
    video: Video | None  # None: the video was deleted since
    consensus: VideoConsensus | None

    @property
    def current_label(self) -> bool | None:
        """The consensus now (a review overrides the votes); None when unlabeled or tied."""
        return None if self.consensus is None else self.consensus.value

    @property
    def label_changed(self) -> bool:
        return self.current_label is not None and self.current_label != self.version_label

    @property
    def labelers(self) -> int:
        return 0 if self.consensus is None else self.consensus.total_votes

    @property
    def labelers_disagree(self) -> bool:
        """Some labelers said yes and others no (a review may have settled it since)."""
        return self.consensus is not None and self.consensus.positive_votes > 0 and self.consensus.negative_votes > 0

    @property
    def reviewed(self) -> bool:
        return self.consensus is not None and self.consensus.review_value is not None


@dataclass(frozen=True)
class RunErrors:
    run: Run
    threshold: float
    test_rows: int
    false_positives: int
    false_negatives: int
    # The mistakes that pass the filter (``matching``), sorted; ``mistakes`` is the page asked for.
    matching: int
    mistakes: list[Mistake]

    @property
    def mistake_count(self) -> int:
        return self.false_positives + self.false_negatives


def run_for_errors(run_id: int) -> Run:
    """A live run with its experiment and dataset version, and ``has_predictions``
    annotated: one query. Raises ``Run.DoesNotExist``."""
    return (
        Run.objects.filter(pk=clean_id(run_id, "run_id"), deleted_at__isnull=True, experiment__deleted_at__isnull=True)
        .select_related("experiment", "dataset_version__dataset")
        .defer("reproducibility", "dataset_version__requested_aids", "dataset_version__selection",
               "experiment__description")
        .annotate(has_predictions=Exists(Artifact.objects.filter(run=OuterRef("pk"), path=PREDICTIONS_PATH)))
        .get()
    )


def run_errors(
    run_id: int,
    *,
    kind: str | None = None,
    order: str = MistakeOrder.MOST_CONFIDENT,
    offset: int = 0,
    limit: int | None = MISTAKES_PAGE_SIZE,
) -> RunErrors:
    """Run ``run_id``'s test-split mistakes at its threshold (``kind``: only false
    positives or only false negatives), sorted by ``order`` (ties by aid), the page
    ``offset``/``limit`` with their videos and current labels.

    Raises ``Run.DoesNotExist``, ``ValidationError`` for a bad ``kind`` / ``order``, and
    ``RunPredictionsMissing`` when the run saved no (readable) predictions."""
    if kind not in (None, *MISTAKE_KINDS):
        raise ValidationError({"kind": f"must be {' or '.join(MISTAKE_KINDS)} (got {kind!r})"})
    if order not in MistakeOrder.values:
        raise ValidationError({"order": f"must be one of {', '.join(MistakeOrder.values)} (got {order!r})"})
    run = run_for_errors(run_id)
    predictions = _run_predictions(run)
    test = predictions.split == "test"
    label = predictions.label[test].astype(bool)
    predicted = predictions.predicted[test]
    probability = predictions.probability[test].astype(np.float64)
    aid = predictions.aid[test]
    false_positive = predicted & ~label
    false_negative = ~predicted & label
    chosen = {FALSE_POSITIVE: false_positive, FALSE_NEGATIVE: false_negative}.get(kind, false_positive | false_negative)
    rows = np.flatnonzero(chosen)
    confidence = np.where(predicted, probability, 1.0 - probability)
    sign = -1.0 if order == MistakeOrder.MOST_CONFIDENT else 1.0
    rows = rows[np.lexsort((aid[rows], sign * confidence[rows]))]
    page = rows[offset:None if limit is None else offset + limit]
    consensus = consensus_by_aid(aid[page].tolist()) if len(page) else {}
    mistakes = []
    for row in page.tolist():
        row_aid = int(aid[row])
        found = consensus.get(row_aid)
        mistakes.append(Mistake(
            aid=row_aid,
            kind=FALSE_POSITIVE if predicted[row] else FALSE_NEGATIVE,
            probability=float(probability[row]),
            confidence=float(confidence[row]),
            version_label=bool(label[row]),
            video=None if found is None else found.video,
            consensus=found,
        ))
    return RunErrors(
        run=run, threshold=predictions.threshold, test_rows=int(test.sum()),
        false_positives=int(false_positive.sum()), false_negatives=int(false_negative.sum()),
        matching=len(rows), mistakes=mistakes,
    )


def _run_predictions(run: Run) -> Predictions:
    if not run.has_predictions:
        reason = ("it has not finished" if not run.is_finished
                  else "it saved none (trained before runs saved them, or failed)")
        raise RunPredictionsMissing(
            f"Run {run.pk} has no predictions file ({PREDICTIONS_PATH}): {reason}. "
            "Reproduce the run to get one."
        )
    try:
        return predictions_read(tracking.artifact_file(run.pk, PREDICTIONS_PATH))
    except (ValidationError, OSError, PredictionsFileError) as error:
        detail = error.messages[0] if isinstance(error, ValidationError) else str(error)
        raise RunPredictionsMissing(
            f"Run {run.pk}'s predictions file ({PREDICTIONS_PATH}) cannot be read: {detail}"
        ) from None
