import os

from django.core.management.base import BaseCommand

from cvsa_ml.bootstrap import demo_admin_bootstrap, groups_bootstrap


class Command(BaseCommand):
    help = "Create the labelers/reviewers/admins groups and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        groups = groups_bootstrap()
        self.stdout.write(f"Groups: {', '.join(sorted(groups))}")
        credentials = demo_admin_bootstrap(password=os.environ.get("CVSA_DEMO_PASSWORD"))
        if credentials.password:
            self.stdout.write(self.style.SUCCESS(f"Demo login: {credentials.username} / {credentials.password}"))
        else:
            self.stdout.write(f"Demo login: {credentials.username} (password unchanged; set CVSA_DEMO_PASSWORD to reset it)")
