import importlib

from django.db import migrations

PREVIOUS_EFFECTIVE_VIEW = importlib.import_module(
    "labeling.migrations.0004_constraints_and_effective_label_view"
).CREATE_EFFECTIVE_VIEW.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)

# Only human answers vote: labels a model wrote (source 'model') stay in the history but
# never become anyone's effective label, so they cannot move a consensus, an agreement
# statistic or a dataset's frozen label (which all read this view, directly or through
# labeling_videoconsensus). A whitelist, so a source added later votes only when added here.
# Filtering before DISTINCT ON: a user's model label after their own human label leaves the
# human label in force. The columns are unchanged, so the dependent consensus view stays.
CREATE_EFFECTIVE_VIEW = """
CREATE OR REPLACE VIEW labeling_effectivelabel AS
SELECT DISTINCT ON (video_id, user_id)
       id AS label_id, video_id, user_id, value, source, created_at
FROM labeling_label
WHERE retracted_at IS NULL AND source IN ('human', 'import')
ORDER BY video_id, user_id, created_at DESC, id DESC
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0005_consensus_view_lateral")]

    operations = [
        migrations.RunSQL(CREATE_EFFECTIVE_VIEW, reverse_sql=PREVIOUS_EFFECTIVE_VIEW),
    ]
