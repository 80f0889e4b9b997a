"""The OpenAPI schema describes the server (issue 10, item 5) and Swagger UI works offline (item 7)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

from core.api.bounds import MAX_BIGINT
from core.api.pagination import MAX_PAGE_SIZE


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def integer_schemas(schema, node, where: str, seen=frozenset()):
    """Every integer schema reachable from a request body or parameter."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                yield from integer_schemas(schema, schema["components"]["schemas"][name], where, seen | {name})
            return
        if node.get("type") == "integer":
            yield where, node
        for key, value in node.items():
            yield from integer_schemas(schema, value, f"{where}.{key}", seen)
    elif isinstance(node, list):
        for item in node:
            yield from integer_schemas(schema, item, where, seen)


def test_openapi_schema_validates_without_warnings():
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = out.getvalue()
    for path in ("/api/v1/health", "/api/v1/labels", "/api/v1/consensus", "/api/v1/videos/import",
                 "/api/v1/labels/import", "/api/v1/models", "/api/v1/predict", "/api/v1/scoring-jobs",
                 "/api/v1/model-versions/{version_id}/transition",
                 "/api/v1/dataset/build", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/resume",
                 "/api/v1/experiments", "/api/v1/experiments/{experiment_id}",
                 "/api/v1/experiments/{experiment_id}/restore", "/api/v1/architectures", "/api/v1/runs",
                 "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/cancel", "/api/v1/runs/{run_id}/restore",
                 "/api/v1/runs/{run_id}/metrics", "/api/v1/runs/{run_id}/artifacts/{artifact_path}"):
        assert f"{path}:" in schema


def test_every_operation_documents_its_errors_as_json_detail(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        has_input = "requestBody" in operation or operation.get("parameters")
        if has_input:
            assert "400" in responses, (method, path)
        if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"413", "415"} <= set(responses), (method, path)
        if path != "/api/v1/health":
            assert {"401", "403"} <= set(responses), (method, path)
        for code, response in responses.items():
            if code >= "400" and path != "/api/v1/health":
                body = resolve(schema, response["content"]["application/json"]["schema"])
                assert "detail" in body["properties"], (method, path, code)


def test_every_integer_the_server_reads_has_its_maximum(schema):
    """Limits with the maxima the server enforces; nothing reaches PostgreSQL beyond bigint."""
    for path, method, operation in operations(schema):
        body = operation.get("requestBody", {}).get("content", {})
        for where, node in integer_schemas(schema, [body, operation.get("parameters", [])], f"{method} {path}"):
            assert "maximum" in node and node["maximum"] <= MAX_BIGINT, where


def test_list_limits_state_the_page_size_maximum(schema):
    for path in ("/api/v1/videos", "/api/v1/videos/inconsistent", "/api/v1/experiments", "/api/v1/runs"):
        parameters = {parameter["name"]: parameter for parameter in schema["paths"][path]["get"]["parameters"]}
        assert parameters["limit"]["schema"]["maximum"] == MAX_PAGE_SIZE
        assert parameters["limit"]["schema"]["minimum"] == 1
        assert parameters["offset"]["schema"]["minimum"] == 0
    tasks = {parameter["name"]: parameter for parameter in schema["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    assert tasks["limit"]["schema"]["maximum"] == 1000


def test_aids_are_required_where_required(schema):
    get = {parameter["name"]: parameter for parameter in schema["paths"]["/api/v1/consensus"]["get"]["parameters"]}
    assert get["aids"]["required"] is True
    body = schema["components"]["schemas"]["ConsensusRequest"]
    assert "aids" in body["required"]


def test_only_the_imports_take_a_form_body(schema):
    for path, method, operation in operations(schema):
        media_types = set(operation.get("requestBody", {}).get("content", {}))
        if path in ("/api/v1/videos/import", "/api/v1/labels/import"):
            assert media_types == {"application/json", "multipart/form-data"}
        elif path == "/api/v1/curation/label-import":  # a file to store and import in the background
            assert media_types == {"multipart/form-data"}
        else:
            assert media_types <= {"application/json"}, (method, path, media_types)


def test_resume_is_documented_for_admins(schema):
    operation = schema["paths"]["/api/v1/tasks/{task_id}/resume"]["post"]

    assert {"200", "400", "403", "404"} <= set(operation["responses"])
    assert "requestBody" not in operation


EXPERIMENT_OPERATIONS = {
    ("/api/v1/experiments", "get"): {"200"},
    ("/api/v1/experiments", "post"): {"201", "400"},
    ("/api/v1/experiments/{experiment_id}", "get"): {"200", "404"},
    ("/api/v1/experiments/{experiment_id}", "patch"): {"200", "400", "404"},
    ("/api/v1/experiments/{experiment_id}", "delete"): {"200", "400", "404"},
    ("/api/v1/experiments/{experiment_id}/restore", "post"): {"200", "404"},
    ("/api/v1/architectures", "get"): {"200"},
    ("/api/v1/runs", "get"): {"200", "400"},
    ("/api/v1/runs", "post"): {"201", "400"},
    ("/api/v1/runs/{run_id}", "get"): {"200", "404"},
    ("/api/v1/runs/{run_id}", "delete"): {"200", "400", "404"},
    ("/api/v1/runs/{run_id}/cancel", "post"): {"200", "400", "404"},
    ("/api/v1/runs/{run_id}/restore", "post"): {"200", "404"},
    ("/api/v1/runs/{run_id}/metrics", "get"): {"200", "400", "404"},
    ("/api/v1/runs/{run_id}/artifacts/{artifact_path}", "get"): {"200", "404"},
}


def test_experiment_and_run_operations_document_their_answers(schema):
    for (path, method), codes in EXPERIMENT_OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert codes | {"401", "403"} <= set(operation["responses"]), (method, path)
        if method != "get":
            assert operation["security"], (method, path)
    run_list = schema["paths"]["/api/v1/runs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(resolve(schema, run_list)["properties"]) >= {"count", "next", "previous", "results"}
    download = schema["paths"]["/api/v1/runs/{run_id}/artifacts/{artifact_path}"]["get"]["responses"]["200"]
    assert download["content"] == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    architectures = schema["paths"]["/api/v1/architectures"]["get"]["responses"]["200"]["content"]
    hyperparameter = resolve(schema, resolve(schema, architectures["application/json"]["schema"]["items"])
                             ["properties"]["hyperparameters"]["items"])
    assert {"name", "type", "default", "minimum", "maximum", "log_scale", "choices", "help"} <= set(
        hyperparameter["properties"])


def test_a_run_request_documents_its_fields(schema):
    body = schema["components"]["schemas"]["RunCreateRequest"]

    assert set(body["required"]) == {"experiment", "architecture"}
    assert body["properties"]["hyperparameters"]["type"] == "object"
    architecture = body["properties"]["architecture"]
    assert resolve(schema, architecture.get("allOf", [architecture])[0])["enum"] == ["mlp", "logreg"]


def test_swagger_ui_is_served_from_the_package_with_a_favicon(logged_in_client, settings):
    # The source files, not the collected manifest (that is the production server's business).
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    response = logged_in_client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "favicon" in page
    assert re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", page) == []
    assert "cdn." not in page and "jsdelivr" not in page and "unpkg" not in page
