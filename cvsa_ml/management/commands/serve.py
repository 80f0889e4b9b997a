import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from cvsa_ml import embedded_services
from cvsa_ml.bootstrap import demo_admin_bootstrap, groups_bootstrap


class Command(BaseCommand):
    help = (
        "Run the whole product: embedded services, migrations, bootstrap, demo data on first start, "
        "then the web server and one Celery worker until Ctrl-C."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default=os.environ.get("CVSA_ADDRPORT", "127.0.0.1:8000"))
        parser.add_argument("--no-demo", action="store_true", help="do not load demo data on first start")

    def handle(self, *args, addrport, no_demo, **options):
        for service in embedded_services.start_all():
            self.stdout.write(f"{service.name}: {service.detail}")
        call_command("migrate", interactive=False, verbosity=0)
        groups_bootstrap()
        credentials = demo_admin_bootstrap(password=os.environ.get("CVSA_DEMO_PASSWORD"))
        if not no_demo:
            call_command("load_demo", if_empty=True, no_progress=True)

        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        worker = subprocess.Popen(
            [python, "-m", "celery", "-A", "cvsa_ml", "worker", "--loglevel=INFO",
             "-Q", "default,embeddings,training", "--concurrency=2", "--hostname=cvsa@%h",
             # One process on one machine: the worker also runs the periodic sweeper (beat).
             "--beat", f"--schedule={settings.DATA_DIR / 'celerybeat-schedule'}"],
            cwd=settings.BASE_DIR,
        )
        web = subprocess.Popen([python, manage, "runserver", addrport, "--noreload"], cwd=settings.BASE_DIR)
        password = credentials.password or "(unchanged; set CVSA_DEMO_PASSWORD to reset)"
        self.stdout.write(self.style.SUCCESS(
            f"\n  CVSA ML is running at http://{addrport}/\n  Log in as {credentials.username} / {password}\n"
            "  Ctrl-C stops the web server and the worker (the embedded databases keep running; "
            "`make stop` ends them).\n"
        ))
        children = [web, worker]
        # `kill`/systemd send SIGTERM: stop the children as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not abandon the children half-stopped: finish the shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.stdout.write("Stopping the web server and the worker (the worker finishes its current task)...")
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
        self.stdout.write("Stopped web server and worker.")
