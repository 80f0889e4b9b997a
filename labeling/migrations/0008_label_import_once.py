from django.conf import settings
from django.db import migrations, models

# The label import (labeling.label_import) writes with INSERT ... ON CONFLICT DO NOTHING on
# this partial index, so importing the same old-system rows (video, user, created_at) twice
# never adds a second label. Partial: only an imported row is identified by its time; human
# and model labels are append-only history and stay unrestricted.


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0007_review_requests"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="label",
            constraint=models.UniqueConstraint(
                condition=models.Q(("source", "import")),
                fields=("video", "user", "created_at"),
                name="label_import_once",
            ),
        ),
    ]
