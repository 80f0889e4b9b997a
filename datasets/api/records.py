"""The records ``GET /dataset/{id}`` inlines: every member of a ready version with its vector."""

from __future__ import annotations

from typing import Any

from datasets import selectors
from datasets.api.serializers import datetime_text
from datasets.models import DatasetVersion, DatasetVersionItem
from labeling.selectors import effective_labels_by_video


def dataset_version_records(version: DatasetVersion) -> list[dict[str, Any]]:
    """Four queries whatever the version's size.

    Vectors come from the binary COPY of ``selectors.dataset_version_arrays`` (ordered by
    aid); metadata and labels from one query each, ordered the same way.
    """
    arrays = selectors.dataset_version_arrays(version.pk)
    rows = list(
        DatasetVersionItem.objects.filter(version_id=version.pk)
        .order_by("video__aid")
        .values_list("video_id", "video__aid", "video__title", "video__description", "video__tags",
                     "label", "split", "is_inconsistent", "embedding__checksum")
    )
    labels = effective_labels_by_video(row[0] for row in rows)
    vectors = arrays.X.tolist()
    records = []
    for index, (video_id, aid, title, description, tags, label, split, inconsistent, checksum) in enumerate(rows):
        records.append({
            "aid": aid,
            "embedding": vectors[index],
            "label": label,
            "split": split,
            "metadata": {"aid": aid, "title": title, "description": description, "tags": tags},
            "user_labels": [
                {"user": effective.username, "label": effective.value, "created_at": datetime_text(effective.created_at)}
                for effective in labels.get(video_id, [])
            ],
            "inconsistent": inconsistent,
            "text_checksum": checksum,
        })
    return records
