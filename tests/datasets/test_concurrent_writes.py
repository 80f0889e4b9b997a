"""Writes that run at once in several processes (two builds of one model, several first
syncs of a new model): each test runs them in threads with separate database sessions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from django.db import connections, transaction

from datasets import services
from datasets.models import Embedding, EmbeddingModel
from datasets.services import embedding_store
from datasets.text_composition import text_checksum
from tests.datasets.conftest import DIMENSIONS, MODEL_KEY
from tests.datasets.job_locks import wait_until_a_session_waits_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)

JOIN_DEADLINE_SECONDS = 120  # only a real hang reaches it


def run_in_threads(*bodies: Callable[[], object]) -> list[object]:
    """Run each body in its own thread (its own database session); re-raise the first error."""
    results: list[object] = [None] * len(bodies)
    errors: list[BaseException] = []

    def run(index: int, body: Callable[[], object]) -> None:
        try:
            results[index] = body()
        except BaseException as error:  # noqa: BLE001 (re-raised below)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, body)) for index, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_DEADLINE_SECONDS)
        assert not thread.is_alive(), "a writer hung"
    if errors:
        raise errors[0]
    return results


def vectors(count: int, value: float) -> np.ndarray:
    return np.full((count, DIMENSIONS), value, dtype=np.float32)


def store(model_id: int, checksums: list[str], value: float) -> None:
    embedding_store._stage_prepare()
    embedding_store._embeddings_store(model_id, checksums, vectors(len(checksums), value), overwrite=False)


def test_a_chunk_is_written_in_checksum_order_whatever_order_it_comes_in(registry_file):
    model = services.embedding_models_sync()[MODEL_KEY]
    checksums = sorted(text_checksum(f"text {index}") for index in range(50))

    store(model.pk, list(reversed(checksums)), 1.0)

    # Ids come from a sequence in insertion order: they rise with the checksums.
    ids = list(Embedding.objects.filter(model=model).order_by("checksum").values_list("id", flat=True))
    assert ids == sorted(ids)


def test_two_builds_storing_overlapping_texts_of_one_model_at_once_never_deadlock(registry_file):
    model = services.embedding_models_sync()[MODEL_KEY]
    rounds, size = 4, 4000
    for round_number in range(rounds):
        checksums = [text_checksum(f"round {round_number} text {index}") for index in range(size)]
        start = threading.Barrier(2)

        def forwards(checksums=checksums, start=start):
            start.wait(JOIN_DEADLINE_SECONDS)
            store(model.pk, checksums, 1.0)

        def backwards(checksums=checksums, start=start):
            start.wait(JOIN_DEADLINE_SECONDS)
            store(model.pk, list(reversed(checksums)), 2.0)

        run_in_threads(forwards, backwards)  # a deadlock raises "deadlock detected" here

    assert Embedding.objects.filter(model=model).count() == rounds * size


def test_concurrent_first_syncs_of_a_new_model_all_get_its_row(registry_file):
    """Three ``build_dataset`` calls sync a model the database has never seen: the first
    inserts its row; the two others wait for that insert and must then find the row."""
    first_has_inserted, commit_now = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            models = services.embedding_models_sync()
            first_has_inserted.set()
            assert commit_now.wait(JOIN_DEADLINE_SECONDS)
        return models[MODEL_KEY].pk

    def another():
        assert first_has_inserted.wait(JOIN_DEADLINE_SECONDS)
        return services.embedding_models_sync()[MODEL_KEY].pk

    def commit_once_both_others_wait():
        assert first_has_inserted.wait(JOIN_DEADLINE_SECONDS)
        wait_until_a_session_waits_for_a_lock(locktype=None, sessions=2)
        commit_now.set()

    ids = run_in_threads(first, another, another, commit_once_both_others_wait)

    assert ids[0] == ids[1] == ids[2] == EmbeddingModel.objects.get(key=MODEL_KEY).pk
