import importlib

from django.db import migrations

PREVIOUS_CONSENSUS_VIEW = importlib.import_module(
    "labeling.migrations.0004_constraints_and_effective_label_view"
).CREATE_CONSENSUS_VIEW

# Votes and the latest review are computed per video with LATERAL index lookups
# (label_effective_idx, review_latest_idx). A whole-corpus aggregate joined by hash is
# ~2x faster for full scans, but when the planner misjudges how many videos a filter
# keeps (fresh tables, a big import before autovacuum) it re-ran that aggregate for every
# video: quadratic, minutes at a few thousand. Per-video lookups cost the same at any
# estimate: 100k videos in ~0.25 s, 10k aids in ~0.05 s (bench/labeling.py).
CREATE_CONSENSUS_VIEW = """
CREATE VIEW labeling_videoconsensus AS
SELECT v.id AS video_id,
       votes.positive_votes,
       votes.negative_votes,
       votes.positive_votes + votes.negative_votes AS total_votes,
       r.review_id,
       r.review_value,
       CASE
           WHEN r.review_id IS NOT NULL THEN r.review_value
           WHEN votes.positive_votes > votes.negative_votes THEN true
           WHEN votes.negative_votes > votes.positive_votes THEN false
       END AS value,
       (votes.positive_votes > 0 AND votes.positive_votes = votes.negative_votes) AS is_tie,
       (votes.positive_votes > 0 AND votes.negative_votes > 0 AND r.review_id IS NULL) AS is_inconsistent,
       greatest(votes.positive_votes, votes.negative_votes)::float
           / nullif(votes.positive_votes + votes.negative_votes, 0) AS agreement,
       votes.last_labeled_at
FROM labeling_video v
CROSS JOIN LATERAL (
    SELECT (count(*) FILTER (WHERE e.value))::integer AS positive_votes,
           (count(*) FILTER (WHERE NOT e.value))::integer AS negative_votes,
           max(e.created_at) AS last_labeled_at
    FROM labeling_effectivelabel e
    WHERE e.video_id = v.id
) votes
LEFT JOIN LATERAL (
    SELECT rv.id AS review_id, rv.value AS review_value
    FROM labeling_review rv
    WHERE rv.video_id = v.id
    ORDER BY rv.created_at DESC, rv.id DESC
    LIMIT 1
) r ON true
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0004_constraints_and_effective_label_view")]

    operations = [
        migrations.RunSQL(
            ["DROP VIEW labeling_videoconsensus", CREATE_CONSENSUS_VIEW],
            reverse_sql=["DROP VIEW labeling_videoconsensus", PREVIOUS_CONSENSUS_VIEW],
        ),
    ]
