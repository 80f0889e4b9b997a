import pytest

from cvsa_ml.bootstrap import DEMO_ADMIN_USERNAME, demo_admin_bootstrap, groups_bootstrap

pytestmark = pytest.mark.django_db


def test_pages_redirect_anonymous_users_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_admin_requires_staff_login(client):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_login_page_is_public_and_login_works(client, user):
    assert client.get("/accounts/login/").status_code == 200

    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests-1"})

    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_shows_an_error(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "username and password didn't match" in response.content.decode()


def test_api_without_credentials_is_refused_not_redirected(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_api_docs_need_login(client):
    assert client.get("/api/docs/").status_code in (401, 403)


def test_api_accepts_a_token(client, user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=user)
    response = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200


def test_home_shows_an_admin_the_system_health(client, make_user):
    client.force_login(make_user("adele", group="admins"))

    response = client.get("/")

    assert response.status_code == 200
    assert "System health" in response.content.decode()


def test_bootstrap_is_idempotent_and_prints_credentials_once(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    groups_bootstrap()
    first = demo_admin_bootstrap()
    groups_bootstrap()
    second = demo_admin_bootstrap()

    assert first.username == DEMO_ADMIN_USERNAME
    assert first.password and second.password == first.password
    from django.contrib.auth.models import Group, User

    assert User.objects.filter(username=DEMO_ADMIN_USERNAME).count() == 1
    assert set(Group.objects.values_list("name", flat=True)) == {"labelers", "reviewers", "admins"}
    assert User.objects.get(username=DEMO_ADMIN_USERNAME).check_password(first.password)
