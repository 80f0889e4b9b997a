"""A cleaning rule run as a job (``curation_task_queue(task_type="cleaning", params={"rule",
"params"})``): the same matches and exclusions as the synchronous ``cleaning_run``
(``datasets.services.cleaning``), on a worker, with progress. The exclusions are written
in one transaction, so a run is all or nothing and a re-run after a crash starts clean.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets.cleaning_rules import rule_get, rule_params_clean
from datasets.models import DatasetTask
from datasets.services.cleaning import CleaningPreview, PREVIEW_EXAMPLES, _insert_exclusions, _new_matches


def cleaning_task_params_clean(params: dict[str, Any]) -> dict[str, Any]:
    """``{"rule": key, "params": {...}}`` with the rule's parameters checked and filled."""
    unknown = sorted(set(params) - {"rule", "params"})
    if unknown:
        raise ValidationError({"params": f"unknown keys {unknown}: give rule and params"})
    key = rule_get(params.get("rule")).key
    return {"rule": key, "params": rule_params_clean(key, params.get("params"))}


def cleaning_task_run(task: DatasetTask, progress) -> dict[str, Any]:
    cleaned = cleaning_task_params_clean(task.params)
    key, rule_params = cleaned["rule"], cleaned["params"]
    label = rule_get(key).label
    progress.step("matching", message=f"{label}: finding the videos it matches")
    with transaction.atomic():
        fresh, already = _new_matches(key, rule_params)
        progress.step("excluding", total=len(fresh), message=f"{label}: excluding {len(fresh)} video(s)")
        excluded = _insert_exclusions(key, task.pk, fresh, timezone.now())
    progress.advance(len(fresh))
    preview = CleaningPreview(key, rule_params, len(fresh) + already, already, fresh[:PREVIEW_EXAMPLES])
    result = {**preview.as_json(), "excluded": excluded}
    result.pop("would_exclude")
    result["message"] = f"{label}: excluded {excluded} video(s) ({already} already excluded)"
    return result
