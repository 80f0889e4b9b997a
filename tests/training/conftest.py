"""Fixtures most training tests share: an artifacts directory of their own and an admin."""

import pytest


@pytest.fixture
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def admin(make_user):
    return make_user("ada", group="admins")
