import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cvsa_ml.settings")

app = Celery("cvsa_ml")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
