"""Running a queued training run: claim it (``core.jobs``), load its dataset version in
one binary read, train (``training.trainer``), log a metric batch per epoch, save the
weights and the log as artifacts, record what reproduces it, and end it truthfully.

The run's status is always true: a cancel fences the worker off (it stops at the next
batch boundary and writes nothing more); a worker that dies leaves a free lock, so the
redelivered message takes the run over at once, or the sweeper re-queues or fails it
once its heartbeat is stale; a bug or bad data fails it with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from core import jobs
from core.validation import validation_error_message
from datasets.selectors import dataset_version_arrays
from experiments import services as tracking
from experiments.models import Param, Run, RunStatus
from training.architectures import TrainingConfig, resolve_config
from training.predictions import PREDICTIONS_PATH, predictions_from_result, predictions_write
from training.services.environment import software_versions
from training.services.queueing import run_hyperparameter_params
from training.services.run_jobs import RUN_JOB, run_fail, run_fail_attempts_exhausted
from training.services.sweeps import sweep_trial_epoch_report, sweep_trial_run_ended
from training.trainer import EpochMetrics, TrainingError, TrainingResult, train

logger = logging.getLogger(__name__)

#: Transient database trouble: the Celery task retries (taking over the same attempt).
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
WEIGHTS_PATH = "model.pt"
FINAL_SPLIT_PREFIXES = {"val": "final_val_", "test": "test_"}
FINAL_SPLIT_METRICS = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")

Clock = Callable[[], float]


class RunLog:
    """The run's log file (``run.log`` in its artifact folder): appended to line by line
    so that the run page can show its tail while it runs; recorded as an artifact at
    the end."""

    def __init__(self, run_id: int) -> None:
        folder = tracking.run_artifact_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.path: Path = folder / tracking.RUN_LOG_PATH

    def write(self, message: str) -> None:
        # The pages' time zone (TIME_ZONE), so the log and the run page agree.
        moment = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"{moment} {message}\n")


def _run_heartbeat(run_id: int, attempt: int) -> Callable[[], bool]:
    """The run's fenced heartbeat: False once the run is no longer this attempt's."""

    def heartbeat() -> bool:
        try:
            tracking.run_heartbeat(run_id, expected_attempt=attempt)
        except (tracking.RunAttemptStale, ValidationError, Run.DoesNotExist):
            return False
        return True

    return heartbeat


def run_train(
    run_id: int,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    device: str | torch.device | None = None,
    clock: Clock = time.monotonic,
) -> Run:
    """Run the queued run ``run_id`` in this process (what the Celery task does) and
    return it as it ends up. A run that is not claimable (finished, cancelled, another
    live worker's) is returned untouched.

    Transient database errors are raised with the attempt as ``claim_attempt`` (the
    Celery retry takes over that very attempt); everything else ends the run: failed
    with the reason, or cancelled by whoever cancelled it.
    """
    claim = jobs.job_claim(
        RUN_JOB, run_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds,
        on_attempts_exhausted=lambda refused: run_fail_attempts_exhausted(run_id, refused),
    )
    if not isinstance(claim, jobs.JobClaim):
        run = Run.objects.get(pk=run_id)
        logger.info("training run %s not claimed (status %s): nothing to do", run_id, run.status)
        sweep_trial_run_ended(run_id)  # sweeps: e.g. a queued trial cancelled by hand: advance its sweep
        return run
    watch = jobs.OwnershipWatch(
        RUN_JOB, run_id, _run_heartbeat(run_id, claim.attempt), holds_lock=claim.holds_lock, clock=clock
    )
    log = RunLog(run_id)
    try:
        _execute(run_id, claim, watch, log, on_epoch=on_epoch, device=device)
    except TRANSIENT_DATABASE_ERRORS as error:
        log.write(f"database error, the task retries: {error}")
        error.claim_attempt = claim.attempt
        raise
    except tracking.RunAttemptStale as stale:
        log.write(f"stopped: {stale}")
        logger.warning("training run %s stopped: %s", run_id, stale)
    except SoftTimeLimitExceeded:
        _end_failed(run_id, claim.attempt, log, "the training time limit was reached (CVSA_TRAINING_TIME_LIMIT_SECONDS)")
    except ValidationError as error:
        _end_failed(run_id, claim.attempt, log, validation_error_message(error, with_fields=True))
    except (TrainingError, ValueError) as error:
        _end_failed(run_id, claim.attempt, log, str(error))
    except Exception as error:  # a bug or an unexpected database error: fail visibly, keep the trace in the log
        logger.exception("training run %s failed", run_id)
        _end_failed(run_id, claim.attempt, log, f"{type(error).__name__}: {error}")
    finally:
        if watch.holds_lock:
            jobs.job_lock_release(RUN_JOB, run_id)
    sweep_trial_run_ended(run_id)  # sweeps: a trial's run has ended: advance its sweep (a no-op for other runs)
    return Run.objects.get(pk=run_id)


def _execute(
    run_id: int,
    claim: jobs.JobClaim,
    watch: jobs.OwnershipWatch,
    log: RunLog,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None,
    device: str | torch.device | None,
) -> None:
    attempt = claim.attempt
    run = Run.objects.select_related("dataset_version__embedding_model").defer(
        "dataset_version__requested_aids", "dataset_version__selection"
    ).get(pk=run_id)
    log.write(f"attempt {claim.worker_starts} of {jobs.job_max_attempts()} on {jobs.worker_name()}")
    if claim.worker_starts > 1:
        cleared = tracking.run_metrics_clear(run_id, expected_attempt=attempt)
        log.write(f"taken over after its worker died: training again from epoch 1 ({cleared} points cleared)")
    config, use_augmentation = _stored_config(run)
    version = run.dataset_version
    tracking.run_reproducibility_update(run_id, {
        "dataset_version_id": str(version.pk),
        "dataset_content_hash": version.content_hash,
        "embedding_model": version.embedding_model.key,
        "embedding_dimensions": version.embedding_dimensions,
        "architecture": config.architecture,
        "hyperparameters": config.hyperparameters.as_dict(),
        "seed": config["seed"],
        **({"use_augmentation": True} if use_augmentation else {}),
        **software_versions(),
        "started_at": timezone.now().isoformat(),
        "worker": jobs.worker_name(),
    }, expected_attempt=attempt)
    arrays = dataset_version_arrays(version.pk, augmented=use_augmentation)
    log.write(f"loaded dataset version {version.pk}: {len(arrays.y)} rows × {arrays.X.shape[1]} dimensions")
    if use_augmentation:
        log.write(f"with augmentation: {int(arrays.augmented.sum())} augmented train rows "
                  "(val and test are the members only)")

    def epoch_done(metrics: EpochMetrics) -> None:
        values = metrics.metric_values()
        tracking.run_metrics_log(
            run_id, [(key, metrics.epoch, value) for key, value in values.items()], expected_attempt=attempt
        )
        log.write(f"epoch {metrics.epoch}: " + ", ".join(f"{key} {value:.4g}" for key, value in values.items()))
        # Sweeps: report the epoch to the trial's Optuna study; a pruned trial's run is cancelled here.
        if sweep_trial_epoch_report(run_id, attempt, metrics.epoch, values):
            log.write(f"pruned by its sweep after epoch {metrics.epoch} (median pruner): the run is cancelled")
        watch.check()  # a cancel during the epoch's evaluation stops before the next one
        if on_epoch is not None:
            on_epoch(metrics)

    log.write(f"training {config.architecture} with {config.hyperparameters.as_dict()}")
    result = train(arrays, config, on_epoch=epoch_done, should_stop=watch.should_stop, device=device)
    if result.cancelled or watch.lost:
        log.write(f"stopped after {result.epochs_run} epoch(s): the run was cancelled or taken over")
        return
    for note in result.notes:
        log.write(note)
    weights = log.path.parent / WEIGHTS_PATH
    torch.save({"state_dict": result.state_dict, "config": config.as_dict(), "threshold": result.threshold,
                "input_dimensions": result.input_dimensions}, weights)
    artifact = tracking.run_artifact_record(run_id, WEIGHTS_PATH, expected_attempt=attempt)
    log.write(f"weights saved: {WEIGHTS_PATH} ({artifact.size} bytes, sha256 {artifact.sha256})")
    # The val and test rows' probabilities, so that error analysis never trains again.
    predictions = predictions_from_result(arrays.aids, arrays.y, arrays.splits, result)
    predictions_write(log.path.parent / PREDICTIONS_PATH, predictions)
    artifact = tracking.run_artifact_record(run_id, PREDICTIONS_PATH, expected_attempt=attempt)
    log.write(f"predictions saved: {PREDICTIONS_PATH} ({len(predictions)} val and test rows, "
              f"sha256 {artifact.sha256})")
    tracking.run_metrics_log(run_id, _final_points(result), expected_attempt=attempt)
    tracking.run_reproducibility_update(run_id, _result_record(result), expected_attempt=attempt)
    log.write(_summary_line(result))
    tracking.run_artifact_record(run_id, tracking.RUN_LOG_PATH, expected_attempt=attempt)
    tracking.run_transition(run_id, RunStatus.SUCCEEDED, expected_attempt=attempt)


def _stored_config(run: Run) -> tuple[TrainingConfig, bool]:
    """The config the run was queued with, from its params (validated again: a param
    edited by hand, or a schema changed since, fails the run with the field named), and
    whether it trains with augmentation."""
    params, use_augmentation = run_hyperparameter_params(
        dict(Param.objects.filter(run_id=run.pk).values_list("key", "value"))
    )
    config = resolve_config(run.architecture_key, params)
    if config["seed"] != run.seed:
        raise ValidationError({"seed": f"the run's seed {run.seed} differs from its seed param {config['seed']}"})
    return config, use_augmentation


def _final_points(result: TrainingResult) -> list[tuple[str, int, float]]:
    """The end-of-run metrics, logged at the last epoch's step: both splits at the best
    epoch and the chosen threshold, with their confusion matrices."""
    step = result.epochs_run
    points: list[tuple[str, int, float]] = [("best_epoch", step, float(result.best_epoch))]
    if result.threshold is not None:
        points.append(("threshold", step, result.threshold))
    for split, prefix in FINAL_SPLIT_PREFIXES.items():
        metrics = getattr(result, split)
        if metrics is None:
            continue
        for name in FINAL_SPLIT_METRICS:
            value = getattr(metrics, name)
            if value is not None:
                points.append((f"{prefix}{name}", step, float(value)))
        (tn, fp), (fn, tp) = metrics.confusion_matrix
        points.extend((f"{prefix}{name}", step, float(count)) for name, count in
                      (("tn", tn), ("fp", fp), ("fn", fn), ("tp", tp)))
    return points


def _result_record(result: TrainingResult) -> dict[str, Any]:
    return {
        "device": result.device,
        "device_name": result.device_name,
        "deterministic": result.deterministic,
        "split_rows": result.split_rows,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "early_stopping_metric": result.early_stopping_metric,
        "threshold": result.threshold,
        "finished_at": timezone.now().isoformat(),
        "duration_seconds": round(result.duration_seconds, 3),
        "notes": result.notes,
    }


def _summary_line(result: TrainingResult) -> str:
    test = result.test
    scores = "no test rows" if test is None else (
        f"test F1 {test.f1:.4f}, ROC-AUC {_maybe(test.roc_auc)}, PR-AUC {_maybe(test.pr_auc)}"
    )
    return (f"finished: {result.epochs_run} epoch(s), best epoch {result.best_epoch}, threshold "
            f"{_maybe(result.threshold)}, {scores}, {result.duration_seconds:.1f} s on {result.device_name}")


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _end_failed(run_id: int, attempt: int, log: RunLog, reason: str) -> None:
    log.write(f"failed: {reason}")
    try:
        tracking.run_artifact_record(run_id, tracking.RUN_LOG_PATH, expected_attempt=attempt)
    except (tracking.RunAttemptStale, ValidationError):
        pass
    if not run_fail(run_id, reason, expected_attempt=attempt):
        logger.warning("training run %s failed after losing its claim: %s", run_id, reason)
