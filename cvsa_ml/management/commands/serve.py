import os
import signal
import subprocess

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from cvsa_ml import embedded_services
from cvsa_ml.bootstrap import demo_admin_bootstrap, groups_bootstrap
from cvsa_ml.env import WILDCARD_HOSTS, split_addrport
from cvsa_ml.serving import (
    READY_TIMEOUT_SECONDS,
    collect_static_files,
    port_in_use,
    used_services,
    wait_until_listening,
    web_command,
    worker_command,
)
from cvsa_ml.supervisor import STATUS_FILE_NAME, Supervisor, WebServerExited


class Command(BaseCommand):
    help = (
        "Run the whole product: embedded services, migrations, bootstrap, demo data on first start, "
        "static files, then the production web server (gunicorn) and one Celery worker until Ctrl-C. "
        "A worker that dies is restarted; --dev runs Django's autoreloading development server with DEBUG on."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default=os.environ.get("CVSA_ADDRPORT", "127.0.0.1:8000"))
        parser.add_argument("--no-demo", action="store_true", help="do not load demo data on first start")
        parser.add_argument("--dev", action="store_true",
                            help="Django's development server (autoreload, DEBUG on) instead of gunicorn")
        parser.add_argument("--worker-concurrency", type=int, default=2, help="worker processes (default 2)")

    def handle(self, *args, addrport, no_demo, dev, worker_concurrency, **options):
        try:
            host, port = split_addrport(addrport)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        if port_in_use(host, port):
            raise CommandError(
                f"{addrport} is already in use (another `make run`?): stop it, or choose another address "
                "with --addrport or CVSA_ADDRPORT."
            )
        for service in embedded_services.start_all():
            self.stdout.write(f"{service.name}: {service.detail}")
        for line in used_services():
            self.stdout.write(line)
        call_command("migrate", interactive=False, verbosity=0)
        groups_bootstrap()
        credentials = demo_admin_bootstrap(password=os.environ.get("CVSA_DEMO_PASSWORD"))
        if not no_demo:
            call_command("load_demo", if_empty=True, no_progress=True)
        if not dev:  # the development server serves the source files
            collect_static_files()

        # The children read CVSA_ADDRPORT so that ALLOWED_HOSTS admits the host they serve.
        child_env = {**os.environ, "CVSA_ADDRPORT": addrport}
        if dev:
            child_env["DEBUG"] = "1"

        def start_web():
            return subprocess.Popen(web_command(addrport, dev=dev), cwd=settings.BASE_DIR, env=child_env)

        def start_worker():
            return subprocess.Popen(worker_command(worker_concurrency), cwd=settings.BASE_DIR, env=child_env)

        supervisor = Supervisor(start_web=start_web, start_worker=start_worker,
                                status_file=settings.DATA_DIR / STATUS_FILE_NAME)
        # `kill`/systemd send SIGTERM: stop the children as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        failure = None
        try:
            supervisor.start()
            if not wait_until_listening(host, port, supervisor, READY_TIMEOUT_SECONDS):
                self.stderr.write(f"The web server does not answer on {host}:{port} after "
                                  f"{READY_TIMEOUT_SECONDS} s; still waiting for it.")
            self._banner(host, port, credentials, dev=dev)
            supervisor.run()
        except KeyboardInterrupt:
            pass
        except WebServerExited as exited:
            failure = exited
        finally:
            # A second Ctrl-C must not abandon the children half-stopped: finish the shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if failure is None:
                self.stdout.write("Stopping the web server and the worker (the worker finishes its current task)...")
            else:
                self.stderr.write(f"ERROR: {failure}. Stopping the worker; nothing is served any more.")
            supervisor.stop()
        if failure is not None:
            raise CommandError(f"{failure} (its own messages are above); serve stopped.", returncode=1)
        self.stdout.write("Stopped web server and worker.")

    def _banner(self, host, port, credentials, *, dev):
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{port}/"
        lines = [f"CVSA ML is running at {url}"]
        if host in WILDCARD_HOSTS:
            lines.append(f"  (listening on every interface: list the names clients use in ALLOWED_HOSTS; "
                         f"allowed now: {', '.join(settings.ALLOWED_HOSTS)})")
        mode = "development server, DEBUG on, autoreload" if dev else "gunicorn, DEBUG " + (
            "ON (unset DEBUG for production)" if settings.DEBUG else "off")
        lines.append(f"Mode: {mode}")
        password = credentials.password or "(unchanged; set CVSA_DEMO_PASSWORD to reset)"
        lines.append(f"Log in as {credentials.username} / {password}")
        if embedded_services.wanted_services(os.environ):
            lines.append("Ctrl-C stops the web server and the worker (the embedded databases keep running; "
                         "`make stop` ends them).")
        else:
            lines.append("Ctrl-C stops the web server and the worker.")
        self.stdout.write(self.style.SUCCESS("\n  " + "\n  ".join(lines) + "\n"))
