"""Default groups and the demo admin: created only if absent, so reruns are safe."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction

from core.roles import ADMINS, ALL_ROLES, LABELERS, REVIEWERS
from cvsa_ml.env import read_or_create_private_file, write_private_file

PROJECT_APPS = ("labeling", "datasets", "experiments", "training")

# Codenames per group; admins get every permission of the project's apps.
GROUP_PERMISSIONS = {
    LABELERS: {"view_video", "add_label", "view_label"},
    REVIEWERS: {"view_video", "add_label", "view_label", "add_review", "view_review", "change_review"},
}

DEMO_ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoCredentials:
    username: str
    password: str | None  # None: the user existed and its password was left alone


def _credentials_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-credentials"


@transaction.atomic
def groups_bootstrap() -> dict[str, Group]:
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ALL_ROLES}
    project_permissions = Permission.objects.filter(content_type__app_label__in=PROJECT_APPS)
    groups[ADMINS].permissions.add(*project_permissions)
    for name, codenames in GROUP_PERMISSIONS.items():
        groups[name].permissions.add(*project_permissions.filter(codename__in=codenames))
    return groups


@transaction.atomic
def demo_admin_bootstrap(*, password: str | None = None) -> DemoCredentials:
    """The demo admin; a new one gets a random password saved (0600) in the data dir.

    The credentials file is created atomically and the first writer wins, so two
    processes bootstrapping at the same moment agree on one password (and the loser
    of the race for the user row just reads the winner's).
    """
    user_model = get_user_model()
    credentials_file = _credentials_file()
    user = user_model.objects.filter(username=DEMO_ADMIN_USERNAME).first()
    if user is None:
        if password:
            write_private_file(credentials_file, password)
            new_password = password
        else:
            new_password = read_or_create_private_file(credentials_file, lambda: secrets.token_urlsafe(12))
        try:
            with transaction.atomic():
                user = user_model.objects.create_superuser(DEMO_ADMIN_USERNAME, email="", password=new_password)
                user.groups.add(Group.objects.get(name=ADMINS))
            return DemoCredentials(DEMO_ADMIN_USERNAME, new_password)
        except IntegrityError:  # created meanwhile by a concurrent bootstrap
            user = user_model.objects.get(username=DEMO_ADMIN_USERNAME)
    saved = credentials_file.read_text().strip() if credentials_file.exists() else None
    if password and not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
        write_private_file(credentials_file, password)
        saved = password
    return DemoCredentials(DEMO_ADMIN_USERNAME, saved if saved and user.check_password(saved) else None)
