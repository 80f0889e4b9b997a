"""The labeling queue's write side: which videos a labeler is served next, each reserved
for them so that two labelers at the same moment get different videos, unless the
overlap target needs both (``CVSA_LABELING_OVERLAP`` effective labels per video).

A reservation lives ``CVSA_LABELING_RESERVATION_SECONDS``; it ends when its labeler
answers or passes the video (the next call drops it), switches queue, or when it
expires. A labeler's own live reservations are served again first: a reload shows the
same card, and ``count=2`` keeps the prefetched next card the same.

Speed at a million videos, for a labeler with a long history as for a new one: the
candidates come from ``VideoLabelStats`` (trigger-maintained vote counts) through one
index per queue, in a few short index ranges read from a random key (plus, for the
unlabeled queue, the head in aid order), each at most ``PROBE_ROWS`` rows. The user's own
votes and passes are checked per candidate (an index probe each), so the work is bounded
whatever they did before; never an anti-join from the start of the queue. Only when every
probed row was ineligible does a full walk of the queue's index run (e.g. the queue is empty).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from labeling.models import LabelReservation, Video

#: Rows read per index range of a probe.
PROBE_ROWS = 48
#: Picks per call when another labeler took a picked video between our read and our lock.
RESERVE_ATTEMPTS = 2
_KEY_RANGE = 2_147_483_647
#: The low-agreement queue's tiers (see the ``low_agreement_tier`` formula in migration 0010):
#: open conflicts by agreement (0: a tie … 3: unanimous but reviewed away), then the rest (10 … 13).
LOW_AGREEMENT_TIERS = (0, 1, 2, 3, 10, 11, 12, 13)

_STATS = "labeling_videolabelstats"
_VOTING = "l.source IN ('human', 'import')"


def overlap_target() -> int:
    return settings.CVSA_LABELING_OVERLAP


def _live_others(alias: str = "s") -> str:
    # A holder who answered or passed already (their reservation goes at their next call)
    # holds nothing: their vote, if any, is in total_votes.
    return (f"(SELECT count(*) FROM labeling_labelreservation r WHERE r.video_id = {alias}.video_id "
            "AND r.user_id <> %(user)s AND r.expires_at > %(now)s "
            "AND NOT EXISTS (SELECT 1 FROM labeling_label l WHERE l.video_id = r.video_id AND l.user_id = r.user_id "
            f"AND l.retracted_at IS NULL AND {_VOTING}) "
            "AND NOT EXISTS (SELECT 1 FROM labeling_labelpass p WHERE p.user_id = r.user_id AND p.video_id = r.video_id))")


def _capacity_condition(mode: str, alias: str = "s") -> str:
    """Room for this labeler on the video: below the overlap target counting others' live
    reservations (unlabeled, random), or no one else holding it (low agreement, which asks
    for votes beyond the target)."""
    if mode == "low_agreement":
        return f"{_live_others(alias)} = 0"
    return f"{alias}.total_votes + {_live_others(alias)} < %(overlap)s"


def _eligible(mode: str) -> str:
    return f"""
        NOT EXISTS (SELECT 1 FROM labeling_label l WHERE l.video_id = s.video_id AND l.user_id = %(user)s
                    AND l.retracted_at IS NULL AND {_VOTING})
        AND NOT EXISTS (SELECT 1 FROM labeling_labelpass p WHERE p.user_id = %(user)s AND p.video_id = s.video_id)
        AND NOT (s.video_id = ANY(%(excluded)s))
        AND {_capacity_condition(mode)}"""


def _rotated(start: int) -> str:
    # Distance from the random start, wrapping around: the walk's order.
    return f"(CASE WHEN queue_key >= {start} THEN queue_key - {start} ELSE queue_key::bigint - {start} + {_KEY_RANGE} END)"


def _random_walk(condition: str, segment: int, start: int) -> list[str]:
    """One index range from the random start and its wrap-around, each ``PROBE_ROWS`` long."""
    return [
        f"(SELECT video_id, {segment} AS segment, 1 AS part, {_rotated(start)} AS position FROM {_STATS} "
        f"WHERE {condition} AND queue_key >= {start} ORDER BY queue_key LIMIT {PROBE_ROWS})",
        f"(SELECT video_id, {segment} AS segment, 1 AS part, {_rotated(start)} AS position FROM {_STATS} "
        f"WHERE {condition} AND queue_key < {start} ORDER BY queue_key LIMIT {PROBE_ROWS})",
    ]


def _probe_ranges(mode: str, overlap: int, start: int) -> list[str]:
    if mode == "low_agreement":
        ranges = []
        for order, tier in enumerate(LOW_AGREEMENT_TIERS):
            ranges += _random_walk(f"low_agreement_tier = {tier}", order, start)
        return ranges
    if mode == "random":
        ranges = []
        for votes in range(overlap):
            ranges += _random_walk(f"total_votes = {votes}", 0, start)
        return ranges
    # Unlabeled: closest to the target first; within a vote count the head in aid order,
    # then a random walk (a labeler who did the head still finds the rest at once).
    ranges = []
    for order, votes in enumerate(range(overlap - 1, -1, -1)):
        ranges.append(f"(SELECT video_id, {order} AS segment, 0 AS part, aid AS position FROM {_STATS} "
                      f"WHERE total_votes = {votes} ORDER BY aid LIMIT {PROBE_ROWS})")
        ranges += _random_walk(f"total_votes = {votes}", order, start)
    return ranges


_FULL_WALK = {
    "unlabeled": ("s.total_votes < %(overlap)s", "s.total_votes DESC, s.aid"),
    "random": ("s.total_votes < %(overlap)s", "s.queue_key"),
    "low_agreement": ("s.low_agreement_tier IS NOT NULL", "s.low_agreement_tier, s.queue_key"),
}


def _candidates_sql(mode: str, *, overlap: int, start: int, lock: bool, full_walk: bool) -> str:
    tail = " FOR UPDATE OF s SKIP LOCKED" if lock else ""
    if full_walk:
        condition, order = _FULL_WALK[mode]
        return (f"SELECT s.video_id FROM {_STATS} s WHERE {condition} AND {_eligible(mode)} "
                f"ORDER BY {order} LIMIT %(limit)s{tail}")
    union = " UNION ALL ".join(_probe_ranges(mode, overlap, start))
    if mode == "random":
        # The vote counts' walks interleave by distance from the start: a few rows, sorted.
        return f"""
            SELECT s.video_id FROM {_STATS} s
            JOIN ({union}) c ON c.video_id = s.video_id
            WHERE {_eligible(mode)}
            ORDER BY c.position
            LIMIT %(limit)s{tail}"""
    # At most PROBE_ROWS rows per range, each checked by index probes, then put in queue
    # order explicitly: an Append's order is not a promise (a planner on small or
    # unanalyzed tables hashed the ranges and returned aid order). (A video in both the
    # head and the walk of its vote count may come twice; the caller keeps the first.)
    return f"""
        SELECT s.video_id FROM ({union}) c
        JOIN LATERAL (SELECT * FROM {_STATS} s WHERE s.video_id = c.video_id) s ON true
        WHERE {_eligible(mode)}
        ORDER BY c.segment, c.part, c.position
        LIMIT %(limit)s{tail}"""


def _candidates(cursor, *, mode: str, user, limit: int, excluded: list[int], now: datetime, lock: bool) -> list[int]:
    overlap = overlap_target()
    params = {"user": user.pk, "now": now, "overlap": overlap, "excluded": excluded, "limit": limit}
    start = random.randrange(_KEY_RANGE)
    cursor.execute(_candidates_sql(mode, overlap=overlap, start=start, lock=lock, full_walk=False), params)
    found = list(dict.fromkeys(row[0] for row in cursor.fetchall()))
    if not found:
        # Every probed row was taken (or the queue is empty): walk the whole index once.
        cursor.execute(_candidates_sql(mode, overlap=overlap, start=start, lock=lock, full_walk=True), params)
        found = [row[0] for row in cursor.fetchall()]
    return found


def _normalized_mode(mode: str) -> str:
    return mode if mode in _FULL_WALK else "unlabeled"


def queue_candidate_ids(*, user, mode: str, limit: int = 1, exclude_video_ids=(), now: datetime | None = None) -> list[int]:
    """The videos the queue would hand ``user`` next, in order, without reserving them."""
    with connection.cursor() as cursor:
        return _candidates(cursor, mode=_normalized_mode(mode), user=user, limit=limit,
                           excluded=list(exclude_video_ids), now=now or timezone.now(), lock=False)


# The user's reservations that no longer hold are found through their own rows (a
# LATERAL probe per reservation, never a scan of the user's labels), expired ones of
# anyone through the expiry index.
_HELD = """
WITH own AS (
    SELECT r.id, r.expires_at > %(now)s AND r.mode = %(mode)s AND NOT (r.video_id = ANY(%(excluded)s))
           AND NOT answered.done AS live
    FROM labeling_labelreservation r
    CROSS JOIN LATERAL (
        SELECT EXISTS (SELECT 1 FROM labeling_label l WHERE l.video_id = r.video_id AND l.user_id = r.user_id
                       AND l.retracted_at IS NULL AND l.source IN ('human', 'import'))
            OR EXISTS (SELECT 1 FROM labeling_labelpass p WHERE p.user_id = r.user_id AND p.video_id = r.video_id) AS done
    ) answered
    WHERE r.user_id = %(user)s
), dropped AS (
    DELETE FROM labeling_labelreservation r
    WHERE r.id IN (SELECT id FROM own WHERE NOT live)
       OR (r.expires_at <= %(now)s AND r.user_id <> %(user)s)
    RETURNING r.id
), held AS (
    UPDATE labeling_labelreservation r SET expires_at = %(expires)s
    WHERE r.id IN (SELECT id FROM own WHERE live)
    RETURNING r.video_id, r.created_at, r.id
)
SELECT v.* FROM held JOIN labeling_video v ON v.id = held.video_id ORDER BY held.created_at, held.id
"""

_RESERVE = """
WITH chosen AS (
    SELECT video_id, ordinal FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS c(video_id, ordinal)
), reserved AS (
    INSERT INTO labeling_labelreservation (video_id, user_id, mode, expires_at, created_at)
    SELECT chosen.video_id, %(user)s, %(mode)s, %(expires)s, %(now)s + chosen.ordinal * interval '1 microsecond'
    FROM chosen JOIN labeling_videolabelstats s ON s.video_id = chosen.video_id
    WHERE {capacity}
    ORDER BY chosen.ordinal
    LIMIT %(need)s
    ON CONFLICT DO NOTHING
    RETURNING video_id, created_at
)
SELECT v.* FROM reserved JOIN labeling_video v ON v.id = reserved.video_id ORDER BY reserved.created_at
"""


def queue_next_videos(*, user, mode: str, count: int = 1, exclude_video_ids=(), now: datetime | None = None) -> list[Video]:
    """The next ``count`` videos for ``user`` in queue ``mode``, reserved for them: their
    live reservations first (a reload shows the same cards), then new ones. Never a video
    they voted on or passed, nor one in ``exclude_video_ids``; fewer (or none) when the
    queue runs dry. Three queries (one when the held cards suffice; one more when the
    probe found nothing)."""
    mode = _normalized_mode(mode)
    now = now or timezone.now()
    expires = now + timedelta(seconds=settings.CVSA_LABELING_RESERVATION_SECONDS)
    excluded = [int(video_id) for video_id in exclude_video_ids]
    params = {"user": user.pk, "mode": mode, "now": now, "expires": expires, "excluded": excluded}
    # savepoint=False: no SAVEPOINT round trips inside a request's transaction; the row
    # locks taken by the candidate query must last until the reservations are written.
    with transaction.atomic(savepoint=False):
        videos = list(Video.objects.raw(_HELD, params))[:count]
        need = count - len(videos)
        if need <= 0:
            return videos
        tried = excluded + [video.pk for video in videos]
        for _ in range(RESERVE_ATTEMPTS):
            with connection.cursor() as cursor:
                # Only the rows we mean to reserve are locked: spare locks would hide
                # videos from the labelers asking at the same moment.
                ids = _candidates(cursor, mode=mode, user=user, limit=need, excluded=tried, now=now, lock=True)
            if not ids:
                break
            # A new statement, so a fresh snapshot: a reservation committed by another
            # labeler after our candidate query started (before we locked the row) is seen.
            sql = _RESERVE.format(capacity=_capacity_condition(mode))
            reserved = list(Video.objects.raw(sql, {**params, "overlap": overlap_target(), "ids": ids, "need": need}))
            videos += reserved
            need -= len(reserved)
            if need <= 0:
                break
            tried += ids
        return videos


def reservation_release(*, user, video_id: int | None = None) -> int:
    """End ``user``'s reservation of ``video_id`` (all of theirs when None): the video
    goes back to the queue for others. Returns how many ended."""
    reservations = LabelReservation.objects.filter(user=user)
    if video_id is not None:
        reservations = reservations.filter(video_id=video_id)
    return reservations.delete()[0]
