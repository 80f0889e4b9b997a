import logging
import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cvsa_ml.settings")

logger = logging.getLogger(__name__)

app = Celery("cvsa_ml")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def sweep_stale_jobs() -> int:
    """One sweep of the jobs whose worker died (dataset builds, training runs, label-issue
    scans; each skipped while another worker sweeps), then a nudge to every active sweep
    (in case a trial's end message was lost). Never raises: a failed sweep is logged and
    the next one retries."""
    from django.db import connections

    from datasets import services as dataset_services
    from training import services as training_services

    handled = 0
    try:
        for name, sweep in (("dataset tasks", dataset_services.dataset_task_mark_stale),
                            ("training runs", training_services.training_runs_mark_stale),
                            ("label-issue scans", training_services.label_issue_scans_mark_stale),
                            ("scoring jobs", training_services.scoring_jobs_mark_stale),
                            ("evaluations", training_services.evaluations_mark_stale),
                            ("sweeps", training_services.sweeps_advance_active)):
            try:
                handled += sweep(wait=False)
            except Exception:
                logger.exception("sweeping stale %s failed; retrying at the next interval", name)
        return handled
    finally:
        # The sweep runs in the worker's parent process, which forks pool children:
        # no database connection may stay open there for a child to inherit.
        connections.close_all()


class StaleJobSweeper(bootsteps.StartStopStep):
    """Every worker sweeps every ``CVSA_SWEEP_INTERVAL_SECONDS`` (no beat process needed):
    the service takes a PostgreSQL advisory lock, so one sweep runs at a time across
    all workers, and the jobs of a dead worker are picked up as long as any worker lives."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timer_entry = None

    def start(self, worker):
        from django.conf import settings

        self.timer_entry = worker.timer.call_repeatedly(settings.CVSA_SWEEP_INTERVAL_SECONDS, sweep_stale_jobs)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


app.steps["worker"].add(StaleJobSweeper)
