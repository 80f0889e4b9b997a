"""The abstract model base that gives rows their creation and last-change times."""

from django.db import models


class TimestampedModel(models.Model):
    """``created_at`` / ``updated_at`` for every app's rows. Abstract: its fields belong to
    each concrete table, so where this base lives never shows up in a migration."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
