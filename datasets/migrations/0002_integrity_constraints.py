"""Integrity constraints of the datasets app (review findings).

- choices checks on DatasetVersionItem.split, DatasetVersion.status, DatasetTask.status/type;
- a ready version's counts add up (splits and labels each sum to total_records);
- at most one pending/running task per dataset version (partial unique index);
- trigger ``dataset_version_ready_immutable``: an UPDATE of a row whose OLD.status is
  'ready' is refused, except the ON DELETE SET NULL of ``created_by`` when a user is
  deleted (nothing else changes). DELETE is not affected.
"""

import django.db.models.expressions
import django.db.models.lookups
from django.conf import settings
from django.db import migrations, models


READY_IMMUTABLE_SQL = """
CREATE FUNCTION datasets_version_ready_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_by_id IS NULL
       AND (to_jsonb(NEW) - 'created_by_id') = (to_jsonb(OLD) - 'created_by_id') THEN
        RETURN NEW;  -- the creator's account was deleted (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION 'dataset version % is frozen (ready) and cannot be changed', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER dataset_version_ready_immutable
    BEFORE UPDATE ON datasets_datasetversion
    FOR EACH ROW WHEN (OLD.status = 'ready')
    EXECUTE FUNCTION datasets_version_ready_immutable();
"""

READY_IMMUTABLE_REVERSE_SQL = """
DROP TRIGGER IF EXISTS dataset_version_ready_immutable ON datasets_datasetversion;
DROP FUNCTION IF EXISTS datasets_version_ready_immutable();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0001_datasets_embeddings_versions_tasks'),
        ('labeling', '0004_constraints_and_effective_label_view'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='datasettask',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text="Fencing token: bumped when a worker claims the job and when it is resumed or cancelled; a worker's writes only apply while it still matches"),
        ),
        migrations.AlterField(
            model_name='datasettask',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, help_text="Last sign of life: a worker's progress write, or when it was (re)queued", null=True),
        ),
        migrations.AlterField(
            model_name='datasetversion',
            name='content_hash',
            field=models.CharField(blank=True, help_text="sha256 over a header line 'model_key\\tdimensions\\ttemplate_version\\n' then the lines 'aid\\tchecksum\\tlabel\\tsplit\\n' sorted by aid", max_length=64),
        ),
        migrations.AlterField(
            model_name='datasetversion',
            name='new_embeddings',
            field=models.PositiveIntegerField(default=0, help_text='Distinct vectors this build stored (inserted, or overwritten by force_regenerate)'),
        ),
        migrations.AlterField(
            model_name='datasetversion',
            name='reused_embeddings',
            field=models.PositiveIntegerField(default=0, help_text='Distinct texts whose stored vector was used as it was'),
        ),
        migrations.AddConstraint(
            model_name='datasettask',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'running', 'completed', 'failed', 'cancelled'])), name='dataset_task_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='datasettask',
            constraint=models.CheckConstraint(condition=models.Q(('type__in', ['build', 'cleanup'])), name='dataset_task_type_valid'),
        ),
        migrations.AddConstraint(
            model_name='datasettask',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'running'])), fields=('dataset_version',), name='dataset_task_one_active_per_version'),
        ),
        migrations.AddConstraint(
            model_name='datasetversion',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['building', 'ready', 'failed'])), name='dataset_version_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='datasetversion',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'ready'), _negated=True), models.Q(django.db.models.lookups.Exact(django.db.models.expressions.CombinedExpression(django.db.models.expressions.CombinedExpression(models.F('train_count'), '+', models.F('val_count')), '+', models.F('test_count')), models.F('total_records')), django.db.models.lookups.Exact(django.db.models.expressions.CombinedExpression(models.F('positives'), '+', models.F('negatives')), models.F('total_records'))), _connector='OR'), name='dataset_version_ready_counts_add_up'),
        ),
        migrations.AddConstraint(
            model_name='datasetversionitem',
            constraint=models.CheckConstraint(condition=models.Q(('split__in', ['train', 'val', 'test'])), name='dataset_item_split_valid'),
        ),
        migrations.RunSQL(READY_IMMUTABLE_SQL, READY_IMMUTABLE_REVERSE_SQL),
    ]
