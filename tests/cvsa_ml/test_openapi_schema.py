from io import StringIO

from django.core.management import call_command


def test_openapi_schema_validates_without_warnings():
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = out.getvalue()
    for path in ("/api/v1/health", "/api/v1/labels", "/api/v1/consensus", "/api/v1/videos/import", "/api/v1/dataset/build", "/api/v1/tasks/{task_id}"):
        assert f"{path}:" in schema
