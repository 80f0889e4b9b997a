from io import StringIO

from django.core.management import call_command


def test_services_status_reports_running_embedded_servers():
    out = StringIO()

    call_command("services", "status", stdout=out)

    text = out.getvalue()
    assert "postgres" in text and "running" in text
    assert "redis" in text
