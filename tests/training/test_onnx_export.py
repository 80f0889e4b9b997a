"""ONNX export of a model version: ONNX Runtime's probabilities match torch's within 1e-5
(mlp with batch norm and dropout, logreg), for any number of rows; a graph that does
not match is refused with the max difference and nothing is published; the file and
its sidecar (size, SHA-256, parity) are served by the page and the API, and a file
changed after its export is not."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from onnx import numpy_helper
from rest_framework.test import APIClient

from datasets.selectors import dataset_version_arrays
from tests.training.registry_factories import registered_version
from training import onnx_export as exporter
from training import services
from training.model_export_selectors import ONNX_FILE_NAME, ONNX_SIDECAR_NAME, onnx_export_dir, onnx_export_info
from training.registry_selectors import version_weights_path
from training.served_models import load_classifier
from training.services import model_export

pytestmark = pytest.mark.django_db

MLP_WITH_BATCH_NORM_AND_DROPOUT = {"architecture": "mlp", "hidden_sizes": "16,8", "batch_norm": True, "dropout": 0.3,
                                   "activation": "gelu", "epochs": 4}
LOGREG = {"architecture": "logreg", "epochs": 4}


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


def tampered(graph: bytes, delta: float = 0.05) -> bytes:
    """The graph with ``delta`` added to every weight of its last layer."""
    model = onnx.load_from_string(graph)
    last = [initializer for initializer in model.graph.initializer if initializer.name.endswith("weight")][-1]
    last.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(last) + np.float32(delta), last.name))
    return model.SerializeToString()


def test_sessions_of_the_export_score_like_torch_for_any_number_of_rows():
    version = registered_version(**MLP_WITH_BATCH_NORM_AND_DROPOUT)
    classifier = load_classifier(version_weights_path(version))
    graph = exporter.onnx_export(classifier)
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    X = dataset_version_arrays(version.run.dataset_version_id).X

    for rows in (1, 7, len(X)):
        (probabilities,) = session.run(["probability"], {"embedding": X[:rows]})
        assert probabilities.shape == (rows,) and probabilities.dtype == np.float32
        assert np.max(np.abs(probabilities - classifier.probabilities(X[:rows]))) <= 1e-5
    assert [node.name for node in session.get_inputs()] == ["embedding"]
    assert session.get_inputs()[0].shape[1] == version.input_dimensions


@pytest.mark.parametrize("options", [MLP_WITH_BATCH_NORM_AND_DROPOUT, LOGREG], ids=["mlp", "logreg"])
def test_the_export_is_published_with_its_parity_on_the_test_split(admin, options):
    version = registered_version(**options)
    test_rows = version.run.dataset_version.split_counts["test"]["total"]

    info = services.model_version_onnx_export(version.pk, user=admin)

    path = onnx_export_dir(version.pk) / ONNX_FILE_NAME
    graph = path.read_bytes()
    assert info.size == len(graph) and info.sha256 == hashlib.sha256(graph).hexdigest()
    assert 0 <= info.max_difference <= 1e-5 and info.tolerance == 1e-5
    assert info.checked_rows == test_rows and info.split == "test"
    assert info.dataset_version_id == str(version.run.dataset_version_id)
    assert info.weights_sha256 == version.weights_sha256 and info.exported_by == "ada"
    assert json.loads((path.parent / ONNX_SIDECAR_NAME).read_text()) == info.as_json() == onnx_export_info(
        version.pk).as_json()
    # An independent check of the published file: ONNX Runtime against torch on the test rows.
    arrays = dataset_version_arrays(version.run.dataset_version_id)
    X, _ = arrays.split("test")
    (probabilities,) = onnxruntime.InferenceSession(str(path)).run(["probability"], {"embedding": X})
    expected = load_classifier(version_weights_path(version)).probabilities(X)
    assert np.max(np.abs(probabilities - expected)) <= 1e-5


def test_a_graph_that_does_not_score_like_torch_is_refused_and_nothing_is_published(admin, monkeypatch):
    version = registered_version(**MLP_WITH_BATCH_NORM_AND_DROPOUT)
    honest = exporter.onnx_export
    monkeypatch.setattr(model_export, "onnx_export", lambda classifier: tampered(honest(classifier)))

    with pytest.raises(ValidationError) as raised:
        services.model_version_onnx_export(version.pk, user=admin)

    message = raised.value.message_dict["onnx"][0]
    assert "differ from torch's by up to" in message and "tolerance 1e-05" in message
    assert "the export was not published" in message
    assert not onnx_export_dir(version.pk).exists() and onnx_export_info(version.pk) is None


def test_a_failed_re_export_leaves_the_published_one(admin, monkeypatch):
    version = registered_version(architecture="logreg", epochs=2)
    first = services.model_version_onnx_export(version.pk, user=admin)
    honest = exporter.onnx_export
    monkeypatch.setattr(model_export, "onnx_export", lambda classifier: tampered(honest(classifier), delta=1.0))

    with pytest.raises(ValidationError):
        services.model_version_onnx_export(version.pk, user=admin)

    assert onnx_export_info(version.pk) == first


def test_the_parity_check_itself_measures_the_difference():
    version = registered_version(architecture="logreg", epochs=2)
    classifier = load_classifier(version_weights_path(version))
    X = dataset_version_arrays(version.run.dataset_version_id).X
    graph = exporter.onnx_export(classifier)

    honest = exporter.onnx_parity(graph, classifier, X)
    off = exporter.onnx_parity(tampered(graph, delta=0.5), classifier, X)

    assert honest.passed and honest.rows == len(X)
    assert not off.passed and off.max_difference > 1e-3


def test_changed_weights_and_non_admins_are_refused(admin, make_user):
    version = registered_version(architecture="logreg", epochs=2)
    with pytest.raises(PermissionDenied):
        services.model_version_onnx_export(version.pk, user=make_user("lea", group="labelers"))
    version_weights_path(version).write_bytes(b"not the weights")
    with pytest.raises(ValidationError) as raised:
        services.model_version_onnx_export(version.pk, user=admin)
    assert "changed since its run recorded it" in raised.value.message_dict["weights"][0]
    assert onnx_export_info(version.pk) is None


# --- API and pages ------------------------------------------------------------------------


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_exports_and_downloads_and_says_clearly_when_there_is_nothing(admin, make_user):
    version = registered_version(architecture="logreg", epochs=2)
    api = api_as(admin)
    url = f"/api/v1/model-versions/{version.pk}/onnx"

    before = api.get(url)
    refused = api_as(make_user("lea", group="labelers")).post(url)
    exported = api.post(url)
    downloaded = api.get(url)

    assert before.status_code == 404
    assert before.json()["detail"] == (f"Model version {version.pk} has not been exported to ONNX: "
                                       f"POST /api/v1/model-versions/{version.pk}/onnx exports it")
    assert refused.status_code == 403
    assert exported.status_code == 201, exported.json()
    body = exported.json()
    assert body["max_difference"] <= 1e-5 and body["download"] == url
    content = b"".join(downloaded.streaming_content)
    assert downloaded.status_code == 200 and downloaded["ETag"] == f'"{body["sha256"]}"'
    assert hashlib.sha256(content).hexdigest() == body["sha256"] and len(content) == body["size"]
    assert api.get("/api/v1/model-versions/987654321/onnx").status_code == 404


def test_a_file_changed_after_its_export_is_not_served(admin, client):
    version = registered_version(architecture="logreg", epochs=2)
    services.model_version_onnx_export(version.pk, user=admin)
    path = onnx_export_dir(version.pk) / ONNX_FILE_NAME
    path.write_bytes(tampered(path.read_bytes()))
    client.force_login(admin)

    api = api_as(admin).get(f"/api/v1/model-versions/{version.pk}/onnx")
    page = client.get(f"/training/model-versions/{version.pk}/onnx/model.onnx")

    assert api.status_code == 409 and "changed since it was exported" in api.json()["detail"]
    assert page.status_code == 404


def test_the_panel_offers_the_export_to_admins_and_shows_parity_and_download(admin, make_user, client):
    version = registered_version(architecture="logreg", epochs=2)
    url = f"/training/model-versions/{version.pk}/onnx/"
    client.force_login(make_user("lea", group="labelers"))
    for_labeler = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert client.post(f"{url}export", HTTP_HX_REQUEST="true").status_code == 403
    client.force_login(admin)

    before = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    exported = client.post(f"{url}export", HTTP_HX_REQUEST="true")
    download = client.get(f"{url}model.onnx")

    assert 'data-testid="onnx-none"' in for_labeler and 'data-testid="onnx-export"' not in for_labeler
    assert 'data-testid="onnx-export"' in before and "<html" not in before
    html = exported.content.decode()
    info = onnx_export_info(version.pk)
    assert exported.status_code == 200 and 'data-testid="onnx-parity"' in html
    assert f"on {info.checked_rows} test rows" in html and info.sha256 in html
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == info.sha256
    assert download["Content-Disposition"].startswith('attachment; filename="m-v1.onnx"')


def test_the_panel_shows_why_an_export_was_refused(admin, client, monkeypatch):
    version = registered_version(architecture="logreg", epochs=2)
    honest = exporter.onnx_export
    monkeypatch.setattr(model_export, "onnx_export", lambda classifier: tampered(honest(classifier), delta=1.0))
    client.force_login(admin)

    response = client.post(f"/training/model-versions/{version.pk}/onnx/export", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert 'data-testid="onnx-error"' in response.content.decode() and "differ from torch" in response.content.decode()
    assert onnx_export_info(version.pk) is None
