"""The datasets admin: every page loads; vectors, versions and tasks are read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionItem, Embedding, EmbeddingModel
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    build,
    corpus,
    embedding_model,
    make_tasks,
    make_versions,
    ready_version,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-1"))
    return client


@pytest.mark.parametrize("model", ["embeddingmodel", "embedding", "dataset", "datasetversion", "datasettask"])
def test_changelists_load(admin_client_logged_in, ready_version, model):
    assert admin_client_logged_in.get(f"/admin/datasets/{model}/").status_code == 200


def test_change_pages_load(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()
    task = DatasetTask.objects.get()
    for url in (
        f"/admin/datasets/embeddingmodel/{ready_version.embedding_model_id}/change/",
        f"/admin/datasets/embedding/{embedding.pk}/change/",
        f"/admin/datasets/dataset/{ready_version.dataset_id}/change/",
        f"/admin/datasets/datasetversion/{ready_version.pk}/change/",
        f"/admin/datasets/datasettask/{task.pk}/change/",
    ):
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200, url


def test_embedding_list_never_shows_vectors(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()

    page = admin_client_logged_in.get("/admin/datasets/embedding/").content.decode()

    assert embedding.checksum in page
    assert f"{float(embedding.vector[0]):.4f}" not in page
    detail = admin_client_logged_in.get(f"/admin/datasets/embedding/{embedding.pk}/change/").content.decode()
    assert f"{float(embedding.vector[0]):.4f}" in detail  # a short preview on the detail page


def test_vectors_models_and_tasks_are_read_only(admin_client_logged_in, ready_version):
    embedding = Embedding.objects.first()
    task = DatasetTask.objects.get()
    for model in ("embeddingmodel", "embedding", "datasettask", "datasetversion"):
        assert admin_client_logged_in.get(f"/admin/datasets/{model}/add/").status_code == 403
    for url in (f"/admin/datasets/embedding/{embedding.pk}/delete/", f"/admin/datasets/datasettask/{task.pk}/delete/"):
        assert admin_client_logged_in.post(url, {"post": "yes"}).status_code == 403
    assert Embedding.objects.filter(pk=embedding.pk).exists() and EmbeddingModel.objects.exists()


def test_a_ready_version_cannot_be_changed(admin_client_logged_in, ready_version):
    page = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{ready_version.pk}/change/").content.decode()
    assert 'name="_save"' not in page

    response = admin_client_logged_in.post(
        f"/admin/datasets/datasetversion/{ready_version.pk}/change/", {"description": "edited"}
    )

    assert response.status_code == 403
    ready_version.refresh_from_db()
    assert ready_version.description == "ten labeled videos"


def test_no_version_can_be_changed_not_even_a_failed_one(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="failed")

    page = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{version.pk}/change/").content.decode()
    assert 'name="_save"' not in page

    response = admin_client_logged_in.post(
        f"/admin/datasets/datasetversion/{version.pk}/change/", {"description": "API outage"}
    )

    assert response.status_code == 403
    version.refresh_from_db()
    assert version.description == "" and version.status == "failed"


def test_deleting_a_version_goes_through_the_service(admin_client_logged_in, ready_version):
    confirm = admin_client_logged_in.get(f"/admin/datasets/datasetversion/{ready_version.pk}/delete/")
    assert confirm.status_code == 200
    assert "10" in confirm.content.decode()  # a summary of the cascaded items, not a list of them

    response = admin_client_logged_in.post(f"/admin/datasets/datasetversion/{ready_version.pk}/delete/",
                                           {"post": "yes"})

    assert response.status_code == 302
    assert not DatasetVersion.objects.filter(pk=ready_version.pk).exists()
    assert not DatasetVersionItem.objects.exists()
    assert Embedding.objects.count() == 10  # vectors are shared and kept


def test_deleting_a_version_being_built_is_refused_with_a_message(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="building")
    make_tasks(1, status=DatasetTaskStatus.PENDING, version=version)

    response = admin_client_logged_in.post(f"/admin/datasets/datasetversion/{version.pk}/delete/",
                                           {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "being built" in response.content.decode()
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


def test_bulk_delete_action_is_not_offered_for_versions(admin_client_logged_in, ready_version):
    page = admin_client_logged_in.get("/admin/datasets/datasetversion/").content.decode()
    assert "delete_selected" not in page


def test_datasets_cannot_be_deleted_in_the_admin(admin_client_logged_in, ready_version):
    url = f"/admin/datasets/dataset/{ready_version.dataset_id}/delete/"
    assert admin_client_logged_in.post(url, {"post": "yes"}).status_code == 403
    assert DatasetVersion.objects.filter(pk=ready_version.pk).exists()


def test_changelists_defer_requested_aids(admin_client_logged_in, ready_version):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client_logged_in.get("/admin/datasets/datasetversion/").status_code == 200
        assert admin_client_logged_in.get(f"/admin/datasets/dataset/{ready_version.dataset_id}/change/").status_code == 200
    version_selects = [q["sql"] for q in queries if 'FROM "datasets_datasetversion"' in q["sql"]]
    assert version_selects and all('"requested_aids"' not in sql for sql in version_selects)


def test_task_filters(admin_client_logged_in, ready_version):
    tasks = admin_client_logged_in.get("/admin/datasets/datasettask/?status__exact=completed&type__exact=build")
    assert tasks.status_code == 200 and str(DatasetTask.objects.get().pk) in tasks.content.decode()
    assert admin_client_logged_in.get("/admin/datasets/datasetversion/?status__exact=ready").status_code == 200


def test_versions_need_staff(client, user, ready_version):
    client.force_login(user)

    assert client.get("/admin/datasets/datasetversion/").status_code == 302
    assert DatasetVersion.objects.count() == 1


# --- readable, narrow, constant-query pages (issue 10 item 10) ----------------------------

import re  # noqa: E402

from datasets.models import Dataset  # noqa: E402
from tests.datasets.panel_fixtures import make_tasks  # noqa: E402,F811


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def test_version_list_cuts_long_names_and_combines_counts(admin_client_logged_in, embedding_model):
    long_name = "夏天的数据集" * 30 + "-end"
    (version,) = make_versions(1, embedding_model, name=long_name)
    Dataset.objects.create(name="another")  # filters with a single choice are hidden
    EmbeddingModel.objects.create(key="another", name="another", provider_type=embedding_model.provider_type,
                                  dimensions=4, max_tokens=8, max_batch_size=1)

    body = _page(admin_client_logged_in, "/admin/datasets/datasetversion/")

    version_cell = re.search(r'<th class="field-version">(.*?)</th>', body, re.S).group(1)
    assert f'title="{long_name}"' in version_cell and len(_text(version_cell)) < 40
    assert _text(re.search(r'<td class="field-records">(.*?)</td>', body).group(1)) == "10 (6/4)"
    assert _text(re.search(r'<td class="field-splits">(.*?)</td>', body).group(1)) == "8/1/1"
    headers = re.findall(r'<th scope="col"\s+class="[^"]*column-(\w+)', body)
    assert headers == ["version", "status", "embedding_model", "records", "splits", "embeddings", "created_at"]
    titles = re.findall(r'<details data-filter-title="([^"]+)"', body)
    assert titles == ["status", "embedding model", "dataset", "built"]
    datasets = _page(admin_client_logged_in, "/admin/datasets/dataset/")
    assert f'title="{long_name}"' in datasets and f">{long_name}<" not in datasets
    counts = [_text(cell) for cell in re.findall(r'<td class="field-version_count">(.*?)</td>', datasets)]
    assert sorted(counts) == ["0", "1"]


def test_version_and_task_pages_show_json_as_readable_lists(admin_client_logged_in, embedding_model):
    (version,) = make_versions(1, embedding_model, status="failed")
    DatasetVersion.objects.filter(pk=version.pk).update(
        selection={"strategy": "balanced", "limit": 50, "seed": 42, "metadata_filter": {"uploader_mid": [1, 2]}},
        requested_aids=list(range(1000, 1120)),
        split_counts={"train": {"total": 8, "positives": 5, "negatives": 3},
                      "val": {"total": 1, "positives": 1, "negatives": 0}},
    )
    (task,) = make_tasks(1, status=DatasetTaskStatus.FAILED, version=version)
    DatasetTask.objects.filter(pk=task.pk).update(params={"aid_count": 120, "force_regenerate": False},
                                                  result={"total_records": 10})

    body = _page(admin_client_logged_in, f"/admin/datasets/datasetversion/{version.pk}/change/")

    assert "{&#x27;" not in body and "{'" not in body  # no Python dict repr anywhere
    assert "<strong>strategy</strong>: balanced" in body and "<strong>uploader_mid</strong>: 1, 2" in body
    assert "120: av1000, av1001" in body and "… and 70 more" in body
    assert "<tr><td>train</td><td>8</td><td>5</td><td>3</td></tr>" in body
    assert "0.8 / 0.1 / 0.1" in body
    task_page = _page(admin_client_logged_in, f"/admin/datasets/datasettask/{task.pk}/change/")
    assert "{&#x27;" not in task_page
    assert "<strong>aid_count</strong>: 120" in task_page and "<strong>force_regenerate</strong>: no" in task_page
    assert "<strong>total_records</strong>: 10" in task_page


def test_dataset_changelists_do_not_grow_queries_with_rows(admin_client_logged_in, embedding_model,
                                                            django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    urls = ["/admin/datasets/datasetversion/", "/admin/datasets/datasettask/", "/admin/datasets/dataset/",
            "/admin/datasets/embeddingmodel/", "/admin/datasets/embedding/"]

    def add(count: int, name: str) -> None:
        versions = make_versions(count, embedding_model, name=name)
        for version in versions:
            make_tasks(1, version=version)

    add(2, "small")
    small = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            _page(admin_client_logged_in, url)
        small[url] = len(queries)
    for index in range(8):
        add(5, f"more-{index}")
    assert Dataset.objects.count() == 9 and DatasetTask.objects.count() == 42

    for url in urls:
        with django_assert_max_num_queries(small[url]):
            _page(admin_client_logged_in, url)
