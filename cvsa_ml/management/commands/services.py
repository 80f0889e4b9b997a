from django.core.management.base import BaseCommand, CommandError

from cvsa_ml import embedded_services


class Command(BaseCommand):
    help = (
        "Start, stop or show the embedded PostgreSQL+pgvector and Redis servers in CVSA_DATA_DIR. "
        "Servers replaced by DATABASE_URL / CELERY_BROKER_URL are left alone."
    )
    # Runs before the database exists, so skip the system checks that would touch it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action, **options):
        actions = {
            "start": embedded_services.start_all,
            "stop": embedded_services.stop_all,
            "status": embedded_services.status_all,
        }
        try:
            statuses = actions[action]()
        except embedded_services.EmbeddedServiceError as exc:
            raise CommandError(str(exc)) from exc
        if not statuses:
            self.stdout.write("No embedded services: DATABASE_URL and CELERY_BROKER_URL point at external servers.")
        for service in statuses:
            style = self.style.SUCCESS if service.running else self.style.WARNING
            self.stdout.write(style(f"{service.name:9} {'running' if service.running else 'stopped':8} {service.detail}"))
