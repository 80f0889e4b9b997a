"""Jobs that heal themselves: ``DatasetTask.worker_starts`` counts the workers that
started the current run (a dead worker's job is taken over until it reaches
``CVSA_JOB_MAX_ATTEMPTS``); ``DatasetTask.worker`` names the process (host:pid) running
the current attempt."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0002_integrity_constraints'),
    ]

    operations = [
        migrations.AddField(
            model_name='datasettask',
            name='worker',
            field=models.CharField(blank=True, help_text='host:pid of the process running the current attempt', max_length=255),
        ),
        migrations.AddField(
            model_name='datasettask',
            name='worker_starts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Workers that started this run since it was queued or resumed: a job whose worker died is taken over while this is below CVSA_JOB_MAX_ATTEMPTS, then failed'),
        ),
    ]
