from django.db import migrations

# One row per video. Effective label: each user's latest non-retracted label (DISTINCT ON
# over label_effective_idx). A predicate on video_id is pushed into both aggregates, so
# a single video costs an index lookup while the whole corpus is one sequential pass.
CREATE_VIEW = """
CREATE VIEW labeling_videoconsensus AS
WITH effective AS (
    SELECT DISTINCT ON (video_id, user_id) video_id, user_id, value, created_at
    FROM labeling_label
    WHERE retracted_at IS NULL
    ORDER BY video_id, user_id, created_at DESC, id DESC
),
votes AS (
    SELECT video_id,
           count(*) FILTER (WHERE value) AS positive_votes,
           count(*) FILTER (WHERE NOT value) AS negative_votes,
           max(created_at) AS last_labeled_at
    FROM effective
    GROUP BY video_id
),
latest_review AS (
    SELECT DISTINCT ON (video_id) video_id, id AS review_id, value AS review_value
    FROM labeling_review
    ORDER BY video_id, created_at DESC, id DESC
)
SELECT v.id AS video_id,
       COALESCE(votes.positive_votes, 0)::integer AS positive_votes,
       COALESCE(votes.negative_votes, 0)::integer AS negative_votes,
       r.review_id,
       r.review_value,
       CASE
           WHEN r.review_id IS NOT NULL THEN r.review_value
           WHEN votes.positive_votes > votes.negative_votes THEN true
           WHEN votes.negative_votes > votes.positive_votes THEN false
       END AS value,
       (votes.positive_votes > 0 AND votes.positive_votes = votes.negative_votes) IS TRUE AS is_tie,
       (votes.positive_votes > 0 AND votes.negative_votes > 0 AND r.review_id IS NULL) IS TRUE AS is_inconsistent,
       greatest(votes.positive_votes, votes.negative_votes)::float
           / nullif(votes.positive_votes + votes.negative_votes, 0) AS agreement,
       votes.last_labeled_at
FROM labeling_video v
LEFT JOIN votes ON votes.video_id = v.id
LEFT JOIN latest_review r ON r.video_id = v.id
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0002_corpus_and_labels")]

    operations = [migrations.RunSQL(CREATE_VIEW, reverse_sql="DROP VIEW IF EXISTS labeling_videoconsensus")]
