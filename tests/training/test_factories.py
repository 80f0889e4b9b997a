"""The dataset-version builder the training tests share: a real, ready, trainable version."""

import numpy as np
import pytest

from datasets.selectors import dataset_version_arrays
from tests.training.factories import separable_dataset_version


@pytest.mark.django_db
def test_the_built_version_reads_back_as_separable_arrays_in_every_split():
    version = separable_dataset_version(rows=50, dimensions=6, seed=3)

    arrays = dataset_version_arrays(version.pk)

    assert arrays.X.shape == (50, 6)
    assert version.train_count + version.val_count + version.test_count == 50
    for split in ("train", "val", "test"):
        _, labels = arrays.split(split)
        assert set(labels.tolist()) == {0, 1}, split
    # Separable: the class means lie far apart compared with the unit noise.
    gap = arrays.X[arrays.y == 1].mean(axis=0) - arrays.X[arrays.y == 0].mean(axis=0)
    assert np.linalg.norm(gap) > 4


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_vectors_and_versions_coexist():
    first = dataset_version_arrays(separable_dataset_version(rows=20, seed=7).pk)
    second = dataset_version_arrays(separable_dataset_version(rows=20, seed=7).pk)

    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)
    assert set(first.aids).isdisjoint(second.aids)


@pytest.mark.django_db
def test_building_costs_the_same_queries_for_10_and_500_rows(django_assert_num_queries):
    separable_dataset_version(rows=10)  # the model and dataset exist from here on
    with django_assert_num_queries(8):
        separable_dataset_version(rows=10)
    with django_assert_num_queries(8):
        separable_dataset_version(rows=500)
