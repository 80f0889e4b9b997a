"""Deduplication tasks: exact and near-duplicate groups, and the keep/exclude choice.

- **Exact** duplicates are videos whose composed text (``text_composition``, current
  template) has the same checksum: one streamed scan of the videos, grouped in memory.
- **Near** duplicates are texts whose vectors under one embedding model lie closer than
  ``threshold`` (cosine distance). The model's HNSW index is created when missing
  (``similarity_index``), then the model's vectors of the corpus's texts are searched
  in batches: ONE ``LATERAL`` query per batch of ``KNN_BATCH`` query vectors returns
  each one's ``neighbours`` nearest, pairs under the threshold are joined with
  union-find, and each component of two or more texts is a group holding every video
  of those texts. Same-text videos are the exact kind's business: a near group links
  different texts. Models the index cannot hold are searched exactly (same query).
- Groups are written at the end, in one transaction, a fixed number of statements per
  chunk of ``WRITE_CHUNK`` groups (ids drawn from the sequence, then one ``INSERT ...
  SELECT FROM unnest`` per table). The runner first deletes the task's own groups, so a
  rerun after a crash leaves exactly one set.

Resolving a group (``duplicate_group_resolve``) marks the kept members and gives every
other member an active ``Exclusion`` (rule ``duplicate``), which dataset builds respect.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetTaskType,
    DuplicateGroup,
    DuplicateGroupMember,
    DuplicateKind,
    Embedding,
    EmbeddingModel,
    Exclusion,
)
from datasets.similarity_index import IndexPlan, similarity_index_ensure, similarity_index_plan
from datasets.text_composition import compose_video_text, text_checksum
from labeling.models import Video

DUPLICATE_RULE = "duplicate"
DEFAULT_THRESHOLD = 0.05
MAX_THRESHOLD = 0.5
DEFAULT_NEIGHBOURS = 10
MAX_NEIGHBOURS = 100
#: Query vectors per KNN statement.
KNN_BATCH = 1000
#: Groups per write statement.
WRITE_CHUNK = 1000
#: (anchor, member) distances per statement.
ANCHOR_CHUNK = 10_000
#: Videos read per round trip of the scan.
SCAN_CHUNK = 5000
#: hnsw.ef_search floor (pgvector's default); raised to 2 x neighbours for large k.
MIN_EF_SEARCH = 40


# --- parameters ------------------------------------------------------------------------


def _as_kinds(raw: Any) -> list[str]:
    if raw is None:
        return [DuplicateKind.EXACT, DuplicateKind.NEAR]
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple) or not raw or not all(isinstance(kind, str) for kind in raw):
        raise ValidationError({"kinds": "choose exact and/or near"})
    unknown = sorted(set(raw) - set(DuplicateKind.values))
    if unknown:
        raise ValidationError({"kinds": f"unknown kind(s) {', '.join(unknown)}: choose exact and/or near"})
    return [kind for kind in DuplicateKind.values if kind in raw]


def _as_number(raw: Any, kind: type, name: str):
    if isinstance(raw, bool):
        raise ValidationError({name: f"must be a number, got {raw!r}"})
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: f"must be a{'n integer' if kind is int else ' number'}, got {raw!r}"}) from None
    if kind is int and isinstance(raw, float) and raw != value:
        raise ValidationError({name: f"must be an integer, got {raw!r}"})
    if value != value:  # NaN
        raise ValidationError({name: "must be a number"})
    return value


def deduplication_params_clean(params: Any) -> dict[str, Any]:
    """``{"kinds": [...], "embedding_model": key|None, "threshold": float|None, "neighbours": int|None}``.

    Near search needs ``embedding_model`` (a known key with stored vectors), ``threshold``
    (cosine distance, 0 < t <= 0.5, default 0.05) and ``neighbours`` (1..100, default 10).
    ``ValidationError`` naming each bad field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError({"params": "must be an object"})
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {"kinds": [], "embedding_model": None, "threshold": None, "neighbours": None}
    try:
        cleaned["kinds"] = _as_kinds(params.get("kinds"))
    except ValidationError as error:
        errors.update({key: " ".join(value) for key, value in error.message_dict.items()})
    if DuplicateKind.NEAR in cleaned["kinds"]:
        key = params.get("embedding_model")
        if not key or not isinstance(key, str):
            errors["embedding_model"] = "near duplicates need an embedding model key"
        else:
            model = EmbeddingModel.objects.filter(key=key).first()
            if model is None:
                errors["embedding_model"] = f"no embedding model {key!r}"
            elif not Embedding.objects.filter(model=model).exists():
                errors["embedding_model"] = f"model {key!r} has no stored vectors: build a dataset with it first"
            else:
                cleaned["embedding_model"] = key
        try:
            threshold = _as_number(params.get("threshold", DEFAULT_THRESHOLD), float, "threshold")
            if not 0 < threshold <= MAX_THRESHOLD:
                raise ValidationError(
                    {"threshold": f"must be a cosine distance in (0, {MAX_THRESHOLD}], got {threshold}"})
            cleaned["threshold"] = threshold
        except ValidationError as error:
            errors.update({key: " ".join(value) for key, value in error.message_dict.items()})
        try:
            neighbours = _as_number(params.get("neighbours", DEFAULT_NEIGHBOURS), int, "neighbours")
            if not 1 <= neighbours <= MAX_NEIGHBOURS:
                raise ValidationError({"neighbours": f"must be between 1 and {MAX_NEIGHBOURS}, got {neighbours}"})
            cleaned["neighbours"] = neighbours
        except ValidationError as error:
            errors.update({key: " ".join(value) for key, value in error.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    return cleaned


# --- the runner --------------------------------------------------------------------------


@dataclass
class _Group:
    kind: str
    video_ids: list[int]
    max_distance: float = 0.0
    distances: dict[int, float] = field(default_factory=dict)  # video id -> distance to the first member


class _DisjointSets:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        parent = self.parent.setdefault(item, item)
        if parent != item:
            root = self.find(parent)
            self.parent[item] = root
            return root
        return item

    def union(self, left: int, right: int) -> None:
        left_root, right_root = self.find(left), self.find(right)
        if left_root != right_root:
            self.parent[max(left_root, right_root)] = min(left_root, right_root)

    def components(self) -> list[list[int]]:
        members: dict[int, list[int]] = defaultdict(list)
        for item in self.parent:
            members[self.find(item)].append(item)
        return [sorted(items) for items in members.values() if len(items) > 1]


def _videos_by_checksum(progress) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """checksum -> [(aid, video id)] sorted by aid, over every video with text; videos read."""
    total = Video.objects.count()
    progress.step("composing", total=total, message=f"Composing the texts of {total} video(s)")
    by_checksum: dict[str, list[tuple[int, int]]] = defaultdict(list)
    rows = Video.objects.order_by("aid").values_list("id", "aid", "title", "description", "tags")
    done = 0
    for video_id, aid, title, description, tags in rows.iterator(chunk_size=SCAN_CHUNK):
        text = compose_video_text(title=title, description=description, tags=tags)
        if text:
            by_checksum[text_checksum(text)].append((aid, video_id))
        done += 1
        if done % SCAN_CHUNK == 0:
            progress.advance(done)
    progress.advance(done)
    return by_checksum, done


def _exact_groups(by_checksum: dict[str, list[tuple[int, int]]]) -> list[_Group]:
    return [
        _Group(DuplicateKind.EXACT, [video_id for _, video_id in videos], 0.0, {})
        for videos in by_checksum.values() if len(videos) > 1
    ]


def _corpus_embeddings(model_id: int, by_checksum: dict) -> dict[int, str]:
    """embedding id -> checksum, for the model's vectors of texts some video has now."""
    rows = Embedding.objects.filter(model_id=model_id).order_by("id").values_list("id", "checksum")
    return {
        embedding_id: checksum
        for embedding_id, checksum in rows.iterator(chunk_size=SCAN_CHUNK * 4)
        if checksum in by_checksum
    }


def _knn_sql(plan: IndexPlan, neighbours: int) -> str:
    """Each query vector's nearest neighbours under the model, closer than the threshold.
    The inner ORDER BY repeats the index's cast and predicate, so each LATERAL probe is
    an HNSW index scan (pairs are reported once: the neighbour's id above the query's)."""
    table = Embedding._meta.db_table
    return (
        f"SELECT q.id, n.id, n.distance FROM {table} q "
        f"CROSS JOIN LATERAL ("
        f"SELECT e.id, {plan.distance_sql('e.vector', 'q.vector')} AS distance FROM {table} e "
        f"WHERE {plan.model_predicate('e')} "
        f"ORDER BY {plan.distance_sql('e.vector', 'q.vector')} LIMIT {int(neighbours) + 1}"
        f") n "
        f"WHERE {plan.model_predicate('q')} AND q.id = ANY(%s) AND n.id <> q.id AND n.distance < %s"
    )


def near_pairs(plan: IndexPlan, embedding_ids: list[int], *, threshold: float, neighbours: int,
               progress=None) -> tuple[dict[tuple[int, int], float], int]:
    """{(smaller id, larger id): distance} under the threshold; statements run (SET + SELECT per batch)."""
    sql = _knn_sql(plan, neighbours)
    ef_search = max(MIN_EF_SEARCH, 2 * int(neighbours))
    pairs: dict[tuple[int, int], float] = {}
    statements = 0
    for start in range(0, len(embedding_ids), KNN_BATCH):
        batch = embedding_ids[start:start + KNN_BATCH]
        with transaction.atomic(), connection.cursor() as cursor:
            if plan.uses_index:
                cursor.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
                statements += 1
            cursor.execute(sql, [batch, threshold])
            statements += 1
            for query_id, neighbour_id, distance in cursor.fetchall():
                key = (query_id, neighbour_id) if query_id < neighbour_id else (neighbour_id, query_id)
                pairs[key] = float(distance)
        if progress is not None:
            progress.advance(min(start + KNN_BATCH, len(embedding_ids)))
    return pairs, statements


def _anchor_distances(plan: IndexPlan, rows: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Cosine distances for (anchor embedding id, member embedding id) rows, in ONE statement."""
    if not rows:
        return {}
    table = Embedding._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.anchor, u.member, ({plan.distance_sql('m.vector', 'a.vector')}) "
            f"FROM unnest(%s::bigint[], %s::bigint[]) AS u(anchor, member) "
            f"JOIN {table} a ON a.id = u.anchor JOIN {table} m ON m.id = u.member",
            [[anchor for anchor, _ in rows], [member for _, member in rows]],
        )
        return {(anchor, member): float(distance) for anchor, member, distance in cursor.fetchall()}


def _near_groups(plan: IndexPlan, embedding_checksums: dict[int, str], pairs: dict[tuple[int, int], float],
                 by_checksum: dict[str, list[tuple[int, int]]]) -> list[_Group]:
    sets = _DisjointSets()
    for left, right in pairs:
        sets.union(left, right)
    components = sets.components()
    link_max: dict[int, float] = defaultdict(float)
    for (left, right), distance in pairs.items():
        root = sets.find(left)
        link_max[root] = max(link_max[root], distance)
    pending: list[tuple[_Group, int, dict[int, int]]] = []  # (group, anchor embedding, video id -> embedding id)
    anchor_rows: list[tuple[int, int]] = []
    for component in components:
        # The anchor: the text of the lowest-aid video; members listed by aid.
        members = sorted(
            (aid, video_id, embedding_id)
            for embedding_id in component
            for aid, video_id in by_checksum[embedding_checksums[embedding_id]]
        )
        anchor = members[0][2]
        anchor_rows.extend((anchor, embedding_id) for embedding_id in component if embedding_id != anchor)
        group = _Group(DuplicateKind.NEAR, [video_id for _, video_id, _ in members], link_max[sets.find(component[0])])
        pending.append((group, anchor, {video_id: embedding_id for _, video_id, embedding_id in members}))
    distances: dict[tuple[int, int], float] = {}
    for start in range(0, len(anchor_rows), ANCHOR_CHUNK):
        distances.update(_anchor_distances(plan, anchor_rows[start:start + ANCHOR_CHUNK]))
    for group, anchor, embedding_of in pending:
        group.distances = {
            video_id: 0.0 if embedding_id == anchor else distances[(anchor, embedding_id)]
            for video_id, embedding_id in embedding_of.items()
        }
    return [group for group, _, _ in pending]


def _delete_task_groups(task_id: uuid.UUID) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {DuplicateGroupMember._meta.db_table} WHERE group_id IN "
            f"(SELECT id FROM {DuplicateGroup._meta.db_table} WHERE task_id = %s)", [task_id])
        cursor.execute(f"DELETE FROM {DuplicateGroup._meta.db_table} WHERE task_id = %s", [task_id])


def _write_groups(task_id: uuid.UUID, groups: list[_Group], *, model_id: int | None, threshold: float | None) -> int:
    """Groups and members, three statements per chunk; members written."""
    group_table, member_table = DuplicateGroup._meta.db_table, DuplicateGroupMember._meta.db_table
    members_written = 0
    now = timezone.now()
    for start in range(0, len(groups), WRITE_CHUNK):
        chunk = groups[start:start + WRITE_CHUNK]
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                           [group_table, len(chunk)])
            ids = [row[0] for row in cursor.fetchall()]
            near = [group.kind == DuplicateKind.NEAR for group in chunk]
            cursor.execute(
                f"INSERT INTO {group_table} (id, task_id, kind, embedding_model_id, threshold, size, max_distance, "
                f"created_at, updated_at) "
                f"SELECT u.id, %s, u.kind, CASE WHEN u.near THEN %s::bigint END, CASE WHEN u.near THEN %s::float8 END, "
                f"u.size, u.max_distance, %s, %s "
                f"FROM unnest(%s::bigint[], %s::text[], %s::boolean[], %s::int[], %s::float8[]) "
                f"AS u(id, kind, near, size, max_distance)",
                [task_id, model_id, threshold, now, now, ids, [g.kind for g in chunk], near,
                 [len(g.video_ids) for g in chunk], [g.max_distance for g in chunk]],
            )
            member_groups, member_videos, member_distances = [], [], []
            for group_id, group in zip(ids, chunk):
                for video_id in group.video_ids:
                    member_groups.append(group_id)
                    member_videos.append(video_id)
                    member_distances.append(group.distances.get(video_id, 0.0))
            cursor.execute(
                f"INSERT INTO {member_table} (group_id, video_id, distance, keep) "
                f"SELECT u.group_id, u.video_id, u.distance, TRUE "
                f"FROM unnest(%s::bigint[], %s::bigint[], %s::float8[]) AS u(group_id, video_id, distance)",
                [member_groups, member_videos, member_distances],
            )
            members_written += len(member_videos)
    return members_written


def deduplication_run(task: DatasetTask, progress) -> dict[str, Any]:
    """The curation runner for ``deduplication`` tasks (see the module docstring)."""
    params = deduplication_params_clean(task.params)
    seconds: dict[str, float] = {}
    result: dict[str, Any] = {"kinds": params["kinds"]}

    started = time.perf_counter()
    by_checksum, videos_scanned = _videos_by_checksum(progress)
    seconds["compose"] = time.perf_counter() - started
    result["videos_scanned"] = videos_scanned
    result["distinct_texts"] = len(by_checksum)

    exact: list[_Group] = []
    if DuplicateKind.EXACT in params["kinds"]:
        exact = _exact_groups(by_checksum)
        result["exact"] = {"groups": len(exact), "videos": sum(len(g.video_ids) for g in exact)}

    near: list[_Group] = []
    model_id = None
    if DuplicateKind.NEAR in params["kinds"]:
        model = EmbeddingModel.objects.get(key=params["embedding_model"])
        model_id = model.pk
        plan = similarity_index_plan(model)
        progress.step("indexing", message=f"Similarity index for {model.key} ({plan.kind})")
        started = time.perf_counter()
        created = similarity_index_ensure(model, plan=plan)
        seconds["index"] = time.perf_counter() - started
        progress.heartbeat()

        embedding_checksums = _corpus_embeddings(model.pk, by_checksum)
        embedding_ids = sorted(embedding_checksums)
        progress.step("searching", total=len(embedding_ids),
                      message=f"Nearest {params['neighbours']} of {len(embedding_ids)} vector(s)")
        started = time.perf_counter()
        pairs, statements = near_pairs(plan, embedding_ids, threshold=params["threshold"],
                                       neighbours=params["neighbours"], progress=progress)
        near = _near_groups(plan, embedding_checksums, pairs, by_checksum)
        seconds["search"] = time.perf_counter() - started
        result["near"] = {
            "groups": len(near), "videos": sum(len(g.video_ids) for g in near), "pairs": len(pairs),
            "vectors": len(embedding_ids), "texts_without_vector": len(by_checksum) - len(embedding_ids),
            "index": plan.kind, "index_name": plan.index_name if plan.uses_index else None,
            "index_created": created, "knn_statements": statements,
        }

    groups = exact + near
    progress.step("writing", total=len(groups), message=f"Writing {len(groups)} group(s)")
    started = time.perf_counter()
    with transaction.atomic():
        _delete_task_groups(task.pk)
        members = _write_groups(task.pk, groups, model_id=model_id, threshold=params["threshold"])
    progress.advance(len(groups))
    seconds["write"] = time.perf_counter() - started
    result.update({"groups": len(groups), "videos_in_groups": len({v for g in groups for v in g.video_ids}),
                   "members": members, "seconds": {key: round(value, 3) for key, value in seconds.items()}})
    return result


def deduplication_task_run_now(params: Any, *, user=None, progress=None) -> DatasetTask:
    """Create a deduplication task and run it IN THIS PROCESS (the command; the page's
    fallback while the curation job queue is not installed). Bad params: nothing written."""
    cleaned = deduplication_params_clean(params)
    now = timezone.now()
    task = DatasetTask.objects.create(
        type=DatasetTaskType.DEDUPLICATION, status=DatasetTaskStatus.RUNNING, params=cleaned,
        created_by_id=getattr(user, "pk", None), current_step="starting", started_at=now, heartbeat_at=now,
    )
    try:
        result = deduplication_run(task, progress or _SilentProgress())
    except Exception as error:
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.FAILED, error=str(error), completed_at=timezone.now())
        raise
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.COMPLETED, current_step="completed", percentage=100.0, result=result,
        completed_at=timezone.now(), message=_result_message(result),
    )
    task.refresh_from_db()
    return task


def _result_message(result: dict[str, Any]) -> str:
    parts = []
    if "exact" in result:
        parts.append(f"{result['exact']['groups']} exact group(s)")
    if "near" in result:
        parts.append(f"{result['near']['groups']} near group(s) from {result['near']['pairs']} pair(s)")
    return f"{', '.join(parts)} over {result['videos_scanned']} video(s)"


class _SilentProgress:
    def step(self, name: str, *, total: int = 0, message: str = "", **kwargs) -> None:
        pass

    def advance(self, done: int, *, message: str | None = None) -> None:
        pass

    def heartbeat(self) -> None:
        pass


# --- keep / exclude ------------------------------------------------------------------------


def _exclusion_reason(kept_aid: int, group: DuplicateGroup, distance: float) -> str:
    if group.kind == DuplicateKind.EXACT:
        return f"exact duplicate of av{kept_aid} (group {group.pk})"
    return f"near duplicate of av{kept_aid} (group {group.pk}, cosine distance {distance:.4f})"


def _insert_duplicate_exclusions(task_id, rows: list[tuple[int, str]], now) -> int:
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Exclusion._meta.db_table} (video_id, rule, reason, task_id, created_at) "
            "SELECT u.video_id, %s, u.reason, %s, %s FROM unnest(%s::bigint[], %s::text[]) AS u(video_id, reason) "
            "ON CONFLICT (video_id, rule) WHERE reverted_at IS NULL DO NOTHING",
            [DUPLICATE_RULE, task_id, now, [video_id for video_id, _ in rows], [reason for _, reason in rows]],
        )
        return cursor.rowcount


def duplicate_group_resolve(group_id: int, *, keep_video_ids: Iterable[int], user=None) -> DuplicateGroup:
    """Keep ``keep_video_ids`` (at least one member), exclude the others (rule ``duplicate``,
    the reason naming the kept aid and the distance). Re-resolving reverts the exclusions
    of members now kept that this task wrote, unless another of its groups still excludes
    them. ``ValidationError`` on bad input (nothing written)."""
    try:
        keep = {int(video_id) for video_id in keep_video_ids}
    except (TypeError, ValueError):
        raise ValidationError({"keep_video_ids": "must be a list of video ids"}) from None
    if not keep:
        raise ValidationError({"keep_video_ids": "keep at least one video of the group"})
    with transaction.atomic():
        group = DuplicateGroup.objects.select_for_update().filter(pk=group_id).first()
        if group is None:
            raise ValidationError({"group": f"no duplicate group {group_id}"})
        members = list(group.members.select_related("video").order_by("video__aid"))
        member_ids = {member.video_id for member in members}
        strangers = sorted(keep - member_ids)
        if strangers:
            raise ValidationError({"keep_video_ids": f"not in group {group.pk}: {', '.join(map(str, strangers))}"})
        kept_aid = min(member.video.aid for member in members if member.video_id in keep)
        now = timezone.now()
        newly_kept = [m.video_id for m in members if m.video_id in keep and not m.keep]
        newly_dropped = [m for m in members if m.video_id not in keep]
        group.members.filter(video_id__in=keep).update(keep=True)
        group.members.exclude(video_id__in=keep).update(keep=False)
        if newly_kept:
            still_dropped = set(
                DuplicateGroupMember.objects.filter(group__task_id=group.task_id, video_id__in=newly_kept, keep=False)
                .exclude(group=group).values_list("video_id", flat=True)
            )
            Exclusion.objects.filter(
                rule=DUPLICATE_RULE, task_id=group.task_id, reverted_at__isnull=True,
                video_id__in=[video_id for video_id in newly_kept if video_id not in still_dropped],
            ).update(reverted_at=now, reverted_by_id=getattr(user, "pk", None))
        _insert_duplicate_exclusions(
            group.task_id, [(m.video_id, _exclusion_reason(kept_aid, group, m.distance)) for m in newly_dropped], now)
        group.resolved_at, group.resolved_by_id = now, getattr(user, "pk", None)
        group.save(update_fields=["resolved_at", "resolved_by", "updated_at"])
    return group


def duplicate_groups_keep_lowest_aid(task_id: Any, *, user=None) -> dict[str, int]:
    """For every unresolved group of the task: keep the lowest-aid member, exclude the
    rest. Set-based: the same five statements for any number of groups."""
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        raise ValidationError({"task_id": f"not a task id: {task_id!r}"}) from None
    if not DatasetTask.objects.filter(pk=task_uuid, type=DatasetTaskType.DEDUPLICATION).exists():
        raise ValidationError({"task_id": f"no deduplication task {task_uuid}"})
    group_table, member_table = DuplicateGroup._meta.db_table, DuplicateGroupMember._meta.db_table
    now = timezone.now()
    user_id = getattr(user, "pk", None)
    ranked = (
        f"SELECT m.id, m.video_id, m.group_id, m.distance, g.kind, "
        f"first_value(v.aid) OVER w AS kept_aid, row_number() OVER w AS rank "
        f"FROM {member_table} m JOIN {group_table} g ON g.id = m.group_id JOIN labeling_video v ON v.id = m.video_id "
        f"WHERE g.task_id = %s AND g.resolved_at IS NULL "
        f"WINDOW w AS (PARTITION BY m.group_id ORDER BY v.aid)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {group_table} WHERE task_id = %s AND resolved_at IS NULL FOR UPDATE",
                       [task_uuid])
        groups = len(cursor.fetchall())
        cursor.execute(
            f"INSERT INTO {Exclusion._meta.db_table} (video_id, rule, reason, task_id, created_at) "
            f"SELECT r.video_id, %s, "
            f"CASE WHEN r.kind = 'exact' THEN 'exact duplicate of av' || r.kept_aid || ' (group ' || r.group_id || ')' "
            f"ELSE 'near duplicate of av' || r.kept_aid || ' (group ' || r.group_id || ', cosine distance ' "
            f"|| to_char(r.distance, 'FM0.0000') || ')' END, %s, %s "
            f"FROM ({ranked}) r WHERE r.rank > 1 "
            f"ON CONFLICT (video_id, rule) WHERE reverted_at IS NULL DO NOTHING",
            [DUPLICATE_RULE, task_uuid, now, task_uuid],
        )
        excluded = cursor.rowcount
        cursor.execute(
            f"UPDATE {member_table} m SET keep = (r.rank = 1) FROM ({ranked}) r WHERE m.id = r.id", [task_uuid])
        cursor.execute(
            f"UPDATE {group_table} SET resolved_at = %s, resolved_by_id = %s, updated_at = %s "
            f"WHERE task_id = %s AND resolved_at IS NULL",
            [now, user_id, now, task_uuid],
        )
    return {"groups": groups, "excluded": excluded}
