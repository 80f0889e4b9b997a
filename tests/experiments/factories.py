"""factory_boy factories and bulk builders for the experiments tests.

Runs are created queued (as ``services.run_create`` makes them); tests move them with
``services.run_transition``. ``make_runs`` bulk-inserts finished runs with params and
summaries for list and query-count tests.
"""

from __future__ import annotations

import uuid

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from datasets.models import Dataset, DatasetVersion, DatasetVersionStatus, EmbeddingModel
from experiments import services
from experiments.models import Experiment, Param, Run, RunMetricSummary, RunStatus
from tests.labeling.factories import UserFactory


def dataset_version(status: str = DatasetVersionStatus.READY, name: str = "experiments-tests") -> DatasetVersion:
    """A dataset version with no items (ready: frozen): enough for a run to refer to."""
    model, _ = EmbeddingModel.objects.get_or_create(
        key="experiments-test-model",
        defaults={"name": "test", "provider_type": "local", "dimensions": 8, "max_tokens": 512, "max_batch_size": 8},
    )
    dataset, _ = Dataset.objects.get_or_create(name=name)
    number = DatasetVersion.objects.filter(dataset=dataset).count() + 1
    ready = status == DatasetVersionStatus.READY
    return DatasetVersion.objects.create(
        dataset=dataset, number=number, embedding_model=model, embedding_dimensions=8, text_template_version="v1",
        train_ratio=0.8, val_ratio=0.1, test_ratio=0.1, seed=1, status=status,
        frozen_at=timezone.now() if ready else None, content_hash=uuid.uuid4().hex * 2 if ready else "",
    )


def ready_dataset_version() -> DatasetVersion:
    return dataset_version(DatasetVersionStatus.READY)


class ExperimentFactory(DjangoModelFactory):
    class Meta:
        model = Experiment

    name = factory.Sequence(lambda n: f"experiment {n}")
    description = "does a wider MLP help?"
    tags = factory.LazyFunction(lambda: ["mlp"])
    owner = factory.SubFactory(UserFactory)
    default_dataset_version = factory.LazyFunction(ready_dataset_version)
    metric_key = "val_f1"
    metric_direction = "max"


class RunFactory(DjangoModelFactory):
    """A queued run (the state ``services.run_create`` leaves it in)."""

    class Meta:
        model = Run

    experiment = factory.SubFactory(ExperimentFactory)
    name = factory.Sequence(lambda n: f"run-{n}")
    dataset_version = factory.LazyAttribute(lambda run: run.experiment.default_dataset_version)
    architecture_key = "mlp"
    seed = 0
    queued_at = factory.LazyFunction(timezone.now)


def running_run(**fields) -> Run:
    """A run moved to running by the service (``attempts`` is 1)."""
    run = RunFactory(**fields)
    return services.run_transition(run.pk, RunStatus.RUNNING)


def make_runs(experiment: Experiment, count: int, *, architecture_key: str = "mlp",
              status: str = RunStatus.SUCCEEDED, metric_keys: tuple[str, ...] = ("val_f1", "val_loss"),
              param_keys: tuple[str, ...] = ("lr", "epochs")) -> list[Run]:
    """``count`` finished runs straight into the tables, each with params and summaries
    (no points: the lists must not need them)."""
    now = timezone.now()
    runs = Run.objects.bulk_create([
        Run(experiment=experiment, name=f"bulk-{index}", status=status,
            dataset_version_id=experiment.default_dataset_version_id,
            architecture_key=architecture_key, seed=index, queued_at=now, started_at=now, finished_at=now,
            attempts=1, error="boom" if status == RunStatus.FAILED else "")
        for index in range(count)
    ])
    Param.objects.bulk_create([
        Param(run=run, key=key, value=str(index)) for index, run in enumerate(runs) for key in param_keys
    ])
    RunMetricSummary.objects.bulk_create([
        RunMetricSummary(run=run, key=key, point_count=1, latest_step=0, latest_value=index / count,
                         min_value=index / count, min_step=0, max_value=index / count, max_step=0, updated_at=now)
        for index, run in enumerate(runs) for key in metric_keys
    ])
    return runs
