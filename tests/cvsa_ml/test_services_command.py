from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cvsa_ml import embedded_services


def _service_lines(text: str) -> dict[str, str]:
    """{service name: its whole line} from the command's output."""
    return {line.split()[0]: line for line in text.splitlines() if line.strip()}


def test_services_status_reports_each_running_embedded_server():
    out = StringIO()

    call_command("services", "status", stdout=out)

    lines = _service_lines(out.getvalue())
    wanted = embedded_services.wanted_services()  # the suite may run against external servers
    assert set(lines) == set(wanted) or not wanted
    for name in wanted:
        assert lines[name].split()[1] == "running", lines[name]


def test_services_start_is_a_no_op_when_already_running():
    out = StringIO()

    call_command("services", "start", stdout=out)

    lines = _service_lines(out.getvalue())
    for name in embedded_services.wanted_services():
        assert lines[name].split()[1] == "running", lines[name]


def test_service_errors_become_command_errors_not_tracebacks(monkeypatch):
    def broken():
        raise embedded_services.EmbeddedServiceError("initdb failed (exit status 1): disk full")

    monkeypatch.setattr(embedded_services, "status_all", broken)

    with pytest.raises(CommandError, match="initdb failed .*disk full"):
        call_command("services", "status", stdout=StringIO())
