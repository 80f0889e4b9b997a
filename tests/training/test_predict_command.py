"""``manage.py predict``: scores aids or a raw item with the production version (or a
named one), refuses bad input with one error and nothing written, and starts a batch
scoring job that it follows to the end (or not, with ``--no-wait``)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Video
from tests.training.registry_factories import registered_version, trained_run
from tests.training.scoring_factories import embeddings_keyed_by_text
from training import services
from training.models import JobStatus, ModelStage, Prediction, ScoringJob
from training.prediction_cache import prediction_cache
from training.management.commands import predict as predict_command
from training.services import scoring

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    prediction_cache.clear()
    yield
    prediction_cache.clear()


@pytest.fixture
def production():
    run = trained_run(rows=60, dimensions=8, seed=7)
    version = registered_version("vocaloid", run=run, stage=ModelStage.PRODUCTION)
    embeddings_keyed_by_text(run.dataset_version)
    return version


def predict(*args) -> str:
    out = StringIO()
    call_command("predict", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_aids_are_scored_by_the_production_version(production):
    aids = list(Video.objects.order_by("aid").values_list("aid", flat=True)[:2])

    output = predict("--aids", ",".join(map(str, aids)))

    expected = services.predict_aids(production, aids)
    assert output.splitlines()[0].startswith(f"model vocaloid version 1 (id {production.pk}), threshold ")
    assert output.splitlines()[1:] == [f"av{row.aid}\t{row.probability:.6f}\t{'yes' if row.label else 'no'}"
                                       for row in expected]


def test_a_raw_item_is_scored_by_a_named_version(production):
    video = Video.objects.order_by("aid").first()

    output = predict("--title", video.title, "--version", str(production.pk), "--model", "vocaloid")

    (expected,) = services.predict_aids(production, [video.aid])
    assert output.splitlines()[1] == f"item\t{expected.probability:.6f}\t{'yes' if expected.label else 'no'}"


@pytest.mark.parametrize("args, message", [
    ((), "exactly one of --aids, --title or --score-all"),
    (("--aids", "1", "--score-all"), "exactly one of"),
    (("--aids", "x,y"), "--aids: comma separated video aids"),
    (("--aids", "999999999"), "no video with aid 999999999"),
    (("--aids", "1", "--model", "nope"), "no registered model is named 'nope'"),
    (("--score-all", "--search", "x" * 201), "at most 200"),
])
def test_bad_input_is_one_error_and_nothing_is_written(production, args, message):
    with pytest.raises(CommandError, match=message):
        predict(*args)
    assert not ScoringJob.objects.exists() and not Prediction.objects.exists()


def test_score_all_queues_a_job_and_follows_it_to_the_end(production, monkeypatch):
    waits = []

    def a_worker_runs_the_queued_jobs():
        waits.append(1)
        assert len(waits) < 5, "the command did not see the job end"
        for job_id in ScoringJob.objects.filter(status=JobStatus.QUEUED).values_list("pk", flat=True):
            services.scoring_job_run(job_id)

    monkeypatch.setattr(predict_command, "_wait_for_the_worker", a_worker_runs_the_queued_jobs)

    output = predict("--score-all")

    job = ScoringJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED and job.done == Video.objects.count()
    assert f"queued scoring job {job.pk}" in output and f"scoring job {job.pk} succeeded" in output
    assert Prediction.objects.filter(model_version=production).count() == job.done


def test_score_all_without_waiting_only_queues(production, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(scoring, "scoring_job_enqueue", lambda job_id, task_id, claim_attempt=None: sent.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        output = predict("--score-all", "--only-unscored", "--no-wait")

    job = ScoringJob.objects.get()
    assert job.status == JobStatus.QUEUED and job.video_filter == {"only_unscored": True} and sent == [job.pk]
    assert output.strip() == f"queued scoring job {job.pk}: model vocaloid version 1"
