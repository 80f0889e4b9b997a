"""With DEBUG off (production) every error page is the product's own and leaks nothing."""

import pytest
from django.template.loader import get_template
from django.test import Client

pytestmark = pytest.mark.django_db

# What Django's debug pages show and a production page must not.
LEAKS = [
    "Traceback", "DATABASE", "CELERY", "SECRET", "redis", "postgres", "ALLOWED_HOSTS", "Using the URLconf",
    "urlpatterns", "local-variable-secret", "exception-text-secret", "permission-text-secret", "Request Method",
]


def _assert_leaks_nothing(body: str) -> None:
    found = [word for word in LEAKS if word.lower() in body.lower()]
    assert not found, f"the page shows {found}"


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    return settings


def test_unknown_host_gets_a_400_page_without_settings(production, client):
    response = client.get("/v1/health", HTTP_HOST="evil.example")

    assert response.status_code == 400
    body = response.content.decode()
    _assert_leaks_nothing(body)
    assert "evil.example" not in body


def test_unknown_host_on_a_page_gets_the_styled_400_page(production, client):
    response = client.get("/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    body = response.content.decode()
    assert "<h1>Bad request</h1>" in body and "css/app.css" in body
    _assert_leaks_nothing(body)


def test_unknown_url_gets_the_404_page_not_the_url_configuration(production, logged_in_client):
    response = logged_in_client.get("/no-such-page/")

    assert response.status_code == 404
    body = response.content.decode()
    assert "<h1>Page not found</h1>" in body
    assert "no-such-page" not in body
    _assert_leaks_nothing(body)


@pytest.mark.urls("tests.cvsa_ml.error_urls")
def test_server_error_gets_the_500_page_without_a_traceback(production, user):
    client = Client(raise_request_exception=False)
    client.force_login(user)

    response = client.get("/test-errors/fail/")

    assert response.status_code == 500
    body = response.content.decode()
    assert "<h1>Server error</h1>" in body
    _assert_leaks_nothing(body)


@pytest.mark.urls("tests.cvsa_ml.error_urls")
def test_permission_denied_gets_the_403_page(production, logged_in_client):
    response = logged_in_client.get("/test-errors/denied/")

    assert response.status_code == 403
    body = response.content.decode()
    assert "<h1>Not allowed</h1>" in body
    _assert_leaks_nothing(body)


def test_csrf_failure_gets_the_styled_page(production, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/accounts/logout/")

    assert response.status_code == 403
    body = response.content.decode()
    assert "This form has expired" in body
    _assert_leaks_nothing(body)


def test_500_page_renders_without_request_context_or_database(django_assert_num_queries):
    # Django renders it without a request when something already failed: no context
    # processors, no user, no database, not even static files (their manifest may be the fault).
    with django_assert_num_queries(0):
        body = get_template("500.html").render()

    assert "<h1>Server error</h1>" in body
    assert "{%" not in body and "/static/" not in body


def test_favicon_is_served_at_the_root_and_linked_from_every_page(production, client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content).startswith(b"\x00\x00\x01\x00")  # an ICO header

    login_page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon" href="/favicon.ico"' in login_page
    assert 'href="/static/img/favicon.svg" type="image/svg+xml"' in login_page
