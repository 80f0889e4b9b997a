"""Training with augmentation: the ``use_augmentation`` run option (service, form, API
serializer, reproduce) adds the version's augmented rows to train only; val and test
are evaluated on the members; a version without augmented rows is refused."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from datasets.models import AugmentationKind, AugmentedItem, DatasetVersion, DatasetVersionItem, Embedding, Split
from experiments import services as tracking
from experiments.models import Param, Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.api.serializers import RunCreateInput
from training.architectures import ARCHITECTURES
from training.forms import RunForm
from training.predictions import PREDICTIONS_PATH, predictions_read

pytestmark = pytest.mark.django_db

HYPERPARAMETERS = {"epochs": 3, "batch_size": 16, "early_stopping_patience": 0, "hidden_sizes": "16", "seed": 3}


@pytest.fixture
def version() -> DatasetVersion:
    return separable_dataset_version(rows=40, dimensions=8, seed=2)


@pytest.fixture
def experiment(version):
    return ExperimentFactory(default_dataset_version=version)


def augment(version: DatasetVersion, copies: int = 2) -> int:
    """Augmented rows for every train member: its own vector plus noise, its label."""
    items = list(DatasetVersionItem.objects.filter(version=version, split=Split.TRAIN).select_related("embedding"))
    generator = np.random.default_rng(0)
    rows = []
    for item in items:
        for variant in range(copies):
            vector = np.asarray(item.embedding.vector, dtype=np.float32) + generator.normal(scale=0.1, size=8)
            embedding = Embedding.objects.create(model=version.embedding_model, checksum=f"{item.pk:032x}{variant:032x}",
                                                 dimensions=8, vector=vector.astype(np.float32))
            rows.append(AugmentedItem(version=version, video_id=item.video_id, kind=AugmentationKind.CHARACTER_NOISE,
                                      variant=variant, text=f"noisy {variant}", embedding=embedding, label=item.label))
    AugmentedItem.objects.bulk_create(rows)
    return len(rows)


def queue(experiment, **options) -> Run:
    return services.run_queue(experiment_id=experiment.pk, architecture_key="mlp", hyperparameters=HYPERPARAMETERS,
                              enqueue=False, **options)


def test_use_augmentation_is_refused_on_a_version_without_augmented_rows(experiment):
    with pytest.raises(ValidationError) as caught:
        queue(experiment, use_augmentation=True)
    assert "no augmented rows" in caught.value.message_dict["use_augmentation"][0]
    assert not Run.objects.exists()


def test_a_run_with_augmentation_trains_on_more_rows_and_evaluates_the_members_only(
    experiment, version, artifacts
):
    added = augment(version)
    plain = services.run_train(queue(experiment).pk)
    augmented = services.run_train(queue(experiment, use_augmentation=True).pk)

    assert plain.status == augmented.status == RunStatus.SUCCEEDED, (plain.error, augmented.error)
    plain_rows = plain.reproducibility["split_rows"]
    augmented_rows = augmented.reproducibility["split_rows"]
    assert augmented_rows == {**plain_rows, "train": plain_rows["train"] + added}
    assert plain_rows == {"train": version.train_count, "val": version.val_count, "test": version.test_count}
    assert augmented.reproducibility["use_augmentation"] is True
    assert "use_augmentation" not in plain.reproducibility
    assert Param.objects.get(run=augmented, key="use_augmentation").value == "true"
    assert not Param.objects.filter(run=plain, key="use_augmentation").exists()
    # Val and test predictions: exactly the members of those splits, once each.
    predictions = predictions_read(tracking.artifact_file(augmented.pk, PREDICTIONS_PATH))
    members = dict(DatasetVersionItem.objects.filter(version=version).exclude(split=Split.TRAIN)
                   .values_list("video__aid", "split"))
    assert sorted(predictions.aid.tolist()) == sorted(members)
    assert {int(aid): str(split) for aid, split in zip(predictions.aid, predictions.split)} == members


def test_without_the_option_nothing_changes_even_when_augmented_rows_exist(experiment, version, artifacts):
    before = services.run_train(queue(experiment).pk)
    augment(version)
    after = services.run_train(queue(experiment).pk)
    assert before.reproducibility["split_rows"] == after.reproducibility["split_rows"]
    assert dict(Param.objects.filter(run=before).values_list("key", "value")) == \
        dict(Param.objects.filter(run=after).values_list("key", "value"))


def test_a_reproduction_keeps_the_option(experiment, version):
    augment(version)
    origin = queue(experiment, use_augmentation=True)
    copy = services.run_reproduce(origin.pk, enqueue=False)
    assert Param.objects.get(run=copy, key="use_augmentation").value == "true"


def test_the_form_passes_the_checkbox_and_puts_the_refusal_on_it(experiment, version):
    data = {"experiment": experiment.pk, "dataset_version": version.pk, "architecture": "mlp",
            "use_augmentation": "on",
            **{parameter.name: parameter.as_text(parameter.default) for parameter in ARCHITECTURES["mlp"].schema
               if parameter.name != "batch_norm"}}
    form = RunForm(data)
    assert form.is_valid(), form.errors
    assert form.run_request()["use_augmentation"] is True
    try:
        services.run_queue(**form.run_request(), enqueue=False)
    except ValidationError as error:
        form.errors_from_service(error)
    assert "no augmented rows" in form.errors["use_augmentation"][0]
    unchecked = RunForm({key: value for key, value in data.items() if key != "use_augmentation"})
    assert unchecked.is_valid() and unchecked.run_request()["use_augmentation"] is False


def test_the_api_request_takes_the_field_default_off():
    body = {"experiment": 1, "architecture": "mlp"}
    serializer = RunCreateInput(data=body)
    assert serializer.is_valid() and serializer.validated_data["use_augmentation"] is False
    serializer = RunCreateInput(data={**body, "use_augmentation": "maybe"})
    assert not serializer.is_valid() and "use_augmentation" in serializer.errors
