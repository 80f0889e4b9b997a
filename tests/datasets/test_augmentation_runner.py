"""The augmentation runner (``datasets.services.augmentation``): params, train-only rows,
embedding through the store (fake remote model), idempotent reruns, query counts, and
the arrays with and without the augmented rows."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.augmentation import VideoParts, augment_video
from datasets.models import AugmentationKind, AugmentedItem, DatasetVersionItem, Embedding, Split
from datasets.selectors import dataset_version_arrays
from datasets.services.augmentation import augmentation_params_clean, augmentation_run
from datasets.text_composition import text_checksum
from tests.datasets.augmentation_factories import augmentation_task, text_version
from tests.datasets.curation_support import RecordingProgress

pytestmark = pytest.mark.django_db

ALL_KINDS = list(AugmentationKind.values)


def embedded_inputs(server) -> list[str]:
    return [text for request in server.requests for text in request.inputs]


# --- params -------------------------------------------------------------------------


def test_params_take_defaults_and_keep_the_kinds_in_their_order():
    assert augmentation_params_clean({}) == {"kinds": ALL_KINDS, "copies": 2, "noise_rate": 0.05, "seed": 0}
    assert augmentation_params_clean({"kinds": ["title_only", "character_noise"], "copies": "3", "seed": 9}) == {
        "kinds": ["character_noise", "title_only"], "copies": 3, "noise_rate": 0.05, "seed": 9}
    assert augmentation_params_clean({"kinds": "tag_shuffle, title_only"})["kinds"] == ["tag_shuffle", "title_only"]


@pytest.mark.parametrize(("params", "field"), [
    ({"kinds": []}, "kinds"),
    ({"kinds": ["back_translation"]}, "kinds"),
    ({"copies": 0}, "copies"),
    ({"copies": 6}, "copies"),
    ({"copies": True}, "copies"),
    ({"noise_rate": 0.9}, "noise_rate"),
    ({"noise_rate": "lots"}, "noise_rate"),
    ({"seed": -1}, "seed"),
    ({"rate": 0.1}, "params"),
])
def test_bad_params_are_refused_with_the_param_named(params, field):
    with pytest.raises(ValidationError) as caught:
        augmentation_params_clean(params)
    assert field in caught.value.message_dict


# --- the runner ---------------------------------------------------------------------


def test_only_train_members_get_rows_of_every_kind_with_their_label(registry_file, embedding_server):
    version = text_version(10)
    task = augmentation_task(version, {"copies": 2})
    progress = RecordingProgress()

    result = augmentation_run(task, progress)

    items = list(AugmentedItem.objects.filter(version=version).select_related("embedding"))
    members = {item.video_id: item for item in DatasetVersionItem.objects.filter(version=version)}
    train = {video_id for video_id, item in members.items() if item.split == Split.TRAIN}
    assert {item.video_id for item in items} == train  # never a val or test video
    assert len(train) == 6
    # 2 noise copies (fewer when a copy comes out as the member's own text) + tag shuffle + title only +
    # description only per train video.
    expected_rows = {kind: 0 for kind in ALL_KINDS}
    for member in members.values():
        if member.split == Split.TRAIN:
            parts = VideoParts(member.video.aid, member.video.title, member.video.description, member.video.tags)
            for kind in ALL_KINDS:
                expected_rows[kind] += len(augment_video(parts, kind, copies=2, noise_rate=0.05, seed=0))
    assert result["by_kind"] == expected_rows
    assert expected_rows["character_noise"] >= 10 and expected_rows["tag_shuffle"] == 6
    assert expected_rows["title_only"] == expected_rows["description_only"] == 6
    assert result["rows"] == len(items) == sum(expected_rows.values()) and result["train_members"] == 6
    for item in items:
        assert item.label == members[item.video_id].label
        assert item.task_id == task.pk
        assert item.embedding.checksum == text_checksum(item.text)
        assert item.embedding.model_id == version.embedding_model_id
    video = members[items[0].video_id].video
    expected = augment_video(VideoParts(video.aid, video.title, video.description, video.tags), items[0].kind,
                             copies=2, noise_rate=0.05, seed=0)
    assert items[0].text in {text.text for text in expected}
    # Every distinct text went to the provider once; the stored vectors are the server's.
    assert sorted(embedded_inputs(embedding_server)) == sorted({item.text for item in items})
    stored = Embedding.objects.get(model=version.embedding_model, checksum=text_checksum(items[0].text))
    np.testing.assert_allclose(np.asarray(stored.vector, dtype=np.float64), embedding_server.expected_embedding(items[0].text),
                               rtol=1e-6)
    assert [name for name, _ in progress.steps] == ["compose", "embed", "write"]
    version.refresh_from_db()
    assert version.total_records == 10  # the frozen version is untouched


def test_a_rerun_replaces_the_rows_and_embeds_nothing_again(registry_file, embedding_server):
    version = text_version(10)
    task = augmentation_task(version, {"kinds": ["character_noise", "title_only"], "copies": 3})
    augmentation_run(task, RecordingProgress())
    first = sorted(AugmentedItem.objects.filter(version=version).values_list("video_id", "kind", "variant", "text"))
    requests = len(embedding_server.requests)

    result = augmentation_run(task, RecordingProgress())

    again = sorted(AugmentedItem.objects.filter(version=version).values_list("video_id", "kind", "variant", "text"))
    assert again == first
    assert len(embedding_server.requests) == requests
    assert result["new_embeddings"] == 0 and result["reused_embeddings"] == result["distinct_texts"]


def test_a_new_task_with_fewer_copies_leaves_only_its_copies_and_the_other_kinds_alone(
    registry_file, embedding_server
):
    version = text_version(10)
    first = augmentation_task(version, {"copies": 3})
    augmentation_run(first, RecordingProgress())
    first.status = "completed"
    first.save(update_fields=["status"])

    augmentation_run(augmentation_task(version, {"kinds": ["character_noise"], "copies": 1}), RecordingProgress())

    noise = AugmentedItem.objects.filter(version=version, kind="character_noise")
    assert set(noise.values_list("variant", flat=True)) == {0}
    assert AugmentedItem.objects.filter(version=version, kind="title_only", task=first).count() == 6
    assert not AugmentedItem.objects.filter(version=version, kind="character_noise", task=first).exists()


def test_identical_texts_are_embedded_once_and_stored_texts_not_at_all(registry_file, embedding_server):
    version = text_version(10, titles=lambda index: "同一个标题")
    member_texts = set(DatasetVersionItem.objects.filter(version=version).values_list("embedding__checksum", flat=True))

    result = augmentation_run(augmentation_task(version, {"kinds": ["title_only"]}), RecordingProgress())

    titles = AugmentedItem.objects.filter(version=version, kind="title_only")
    assert titles.count() == 6
    assert titles.values("embedding").distinct().count() == 1
    assert embedded_inputs(embedding_server) == ["标题：同一个标题"]
    assert result["distinct_texts"] == 1 and result["new_embeddings"] == 1
    assert not member_texts & {text_checksum("标题：同一个标题")}


def test_a_copy_equal_to_a_val_or_test_members_text_is_skipped(registry_file, embedding_server):
    # Every video has the same title; the held-out ones have nothing else, so their text is
    # exactly the title-only copy of each train video.
    version = text_version(10, titles=lambda index: "同一个标题",
                           descriptions=lambda index: "简介" if index < 6 else "",
                           tags=lambda index: "a,b" if index < 6 else "")

    result = augmentation_run(augmentation_task(version, {"kinds": ["title_only", "description_only"]}),
                              RecordingProgress())

    assert result["skipped_held_out_texts"] == 6
    assert result["by_kind"] == {"title_only": 0, "description_only": 6}
    assert "标题：同一个标题" not in embedded_inputs(embedding_server)


@pytest.mark.parametrize("status", ["building", "failed"])
def test_an_unready_version_is_refused_and_nothing_written(registry_file, embedding_server, status):
    version = text_version(10, status=status)
    with pytest.raises(ValidationError, match="not ready"):
        augmentation_run(augmentation_task(version, {}), RecordingProgress())
    assert not AugmentedItem.objects.exists()
    assert embedding_server.requests == []


def test_a_task_without_a_version_is_refused(registry_file, embedding_server):
    task = augmentation_task(text_version(10), {})
    task.dataset_version_id = None
    with pytest.raises(ValidationError, match="needs a dataset version"):
        augmentation_run(task, RecordingProgress())
    assert not AugmentedItem.objects.exists()


def test_the_runner_reads_and_writes_in_a_number_of_queries_independent_of_the_members(
    registry_file, embedding_server
):
    def queries(rows: int) -> int:
        version = text_version(rows)
        with CaptureQueriesContext(connection) as captured:
            augmentation_run(augmentation_task(version, {}), RecordingProgress())
        assert AugmentedItem.objects.filter(version=version).count() > 0
        return len(captured)

    assert queries(10) == queries(100)


# --- arrays ---------------------------------------------------------------------------


def test_arrays_add_the_augmented_rows_to_train_only_and_mark_them(registry_file, embedding_server):
    version = text_version(10)
    augmentation_run(augmentation_task(version, {"copies": 1}), RecordingProgress())
    rows = AugmentedItem.objects.filter(version=version).count()

    plain = dataset_version_arrays(version.pk)
    augmented = dataset_version_arrays(version.pk, augmented=True)

    assert len(plain.y) == 10 and not plain.augmented.any()
    assert len(augmented.y) == 10 + rows
    assert augmented.augmented.sum() == rows
    assert set(augmented.splits[augmented.augmented]) == {"train"}
    for split in ("val", "test"):
        np.testing.assert_array_equal(augmented.split(split)[0], plain.split(split)[0])
        np.testing.assert_array_equal(augmented.split(split)[1], plain.split(split)[1])
    np.testing.assert_array_equal(augmented.X[:10], plain.X)
    labels = dict(DatasetVersionItem.objects.filter(version=version).values_list("video__aid", "label"))
    assert [bool(label) for label in augmented.y[10:]] == [labels[aid] for aid in augmented.aids[10:]]
    first = AugmentedItem.objects.filter(version=version).order_by("video__aid", "kind", "variant").first()
    np.testing.assert_allclose(augmented.X[10], np.asarray(first.embedding.vector, dtype=np.float64), rtol=1e-6)
