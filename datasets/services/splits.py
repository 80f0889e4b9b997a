"""Pure functions of a build's members: split assignment, content hash, summary counts."""

from __future__ import annotations

import hashlib
from typing import Any

from datasets.models import Split
from datasets.services.build_state import BuildMember, BuildState


def _split_rank_key(seed: int, aid: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{aid}".encode(), digest_size=8).digest()


def _split_sizes(count: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Largest-remainder rounding of ``count * ratios`` (ties favour train, then val)."""
    shares = [count * ratio for ratio in ratios]
    sizes = [int(share) for share in shares]
    order = sorted(range(3), key=lambda index: (-(shares[index] - sizes[index]), index))
    for index in order[: count - sum(sizes)]:
        sizes[index] += 1
    return sizes[0], sizes[1], sizes[2]


def assign_splits(members: list[BuildMember], ratios: tuple[float, float, float], seed: int) -> int:
    """Deterministic, stratified by label: within each label, members are ranked by
    blake2b(seed:aid) and cut by the ratios. The same seed keeps a video in the same
    split across versions except near the cut points.

    Members that belong together (``member.groups``: a duplicate group, or the same
    composed-text checksum; see ``split_units``) land in ONE split: the unit assigned is
    the group, ranked by blake2b(seed:smallest aid) within the label most of its
    members carry (ties: positive), and the cut points are the ratios of that label's
    MEMBERS (a group goes whole to the split its middle falls in). Stratification is
    therefore approximate: a group's minority-label members follow it, and a cut is off
    by at most one group's size. Without groups every unit is one member, and this is
    exactly the per-member assignment. Returns how many multi-member groups were kept
    together.
    """
    if not any(member.groups for member in members) and len({m.checksum for m in members}) == len(members):
        _assign_member_splits(members, ratios, seed)  # nothing to keep together: the plain path
        return 0
    units = split_units(members)
    keyed = [
        (_majority_label(unit), _split_rank_key(seed, min(m.aid for m in unit)), unit) for unit in units
    ]
    for label in (False, True):
        ranked = [unit for _, _, unit in sorted((entry for entry in keyed if entry[0] is label), key=lambda e: e[1])]
        count = sum(len(unit) for unit in ranked)
        train, val, _ = _split_sizes(count, ratios)
        position = 0
        for unit in ranked:
            # Where the unit's middle falls: a group straddling a cut goes to the side
            # holding most of it (for one member, exactly ``position < cut``).
            middle = position + len(unit) / 2
            split = Split.TRAIN if middle < train else Split.VAL if middle < train + val else Split.TEST
            for member in unit:
                member.split = split
            position += len(unit)
    return sum(1 for unit in units if len(unit) > 1)


def _assign_member_splits(members: list[BuildMember], ratios: tuple[float, float, float], seed: int) -> None:
    for label in (False, True):
        group = sorted((m for m in members if m.label is label), key=lambda m: _split_rank_key(seed, m.aid))
        train, val, _ = _split_sizes(len(group), ratios)
        for position, member in enumerate(group):
            member.split = Split.TRAIN if position < train else Split.VAL if position < train + val else Split.TEST


def _majority_label(unit: list[BuildMember]) -> bool:
    positives = sum(1 for member in unit if member.label)
    return positives * 2 >= len(unit)


def split_units(members: list[BuildMember]) -> list[list[BuildMember]]:
    """The members partitioned into what must share a split: members linked by a common
    duplicate group (``member.groups``) or by the same text checksum, transitively
    (union-find). Without any link each member is its own unit."""
    parent = list(range(len(members)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    def union(index: int, other: int) -> None:
        root_a, root_b = find(index), find(other)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)

    first_by_checksum: dict[str, int] = {}
    first_by_group: dict[int, int] = {}
    linked = False
    for index, member in enumerate(members):
        other = first_by_checksum.setdefault(member.checksum, index)
        if other != index:
            union(index, other)
            linked = True
        for group in member.groups:
            other = first_by_group.setdefault(group, index)
            if other != index:
                union(index, other)
                linked = True
    if not linked:
        return [[member] for member in members]
    units: dict[int, list[BuildMember]] = {}
    for index, member in enumerate(members):
        units.setdefault(find(index), []).append(member)
    return list(units.values())


def content_hash(members: list[BuildMember], *, model_key: str, dimensions: int, template_version: str) -> str:
    """sha256 over a header line ``model_key\\tdimensions\\ttemplate_version\\n``, then
    the lines ``aid\\tchecksum\\tlabel(0/1)\\tsplit\\n`` sorted by aid.

    The header makes the same videos embedded by two models (or two dimensionalities,
    or two text templates) hash differently.
    """
    digest = hashlib.sha256()
    digest.update(f"{model_key}\t{dimensions}\t{template_version}\n".encode())
    for member in sorted(members, key=lambda m: m.aid):
        digest.update(f"{member.aid}\t{member.checksum}\t{int(member.label)}\t{member.split}\n".encode())
    return digest.hexdigest()


def build_summary(state: BuildState) -> dict[str, Any]:
    split_counts = {split: {"total": 0, "positives": 0, "negatives": 0} for split in Split.values}
    for member in state.members:
        bucket = split_counts[member.split]
        bucket["total"] += 1
        bucket["positives" if member.label else "negatives"] += 1
    positives = sum(bucket["positives"] for bucket in split_counts.values())
    return {
        "total_records": len(state.members),
        "positives": positives,
        "negatives": len(state.members) - positives,
        "train_count": split_counts[Split.TRAIN]["total"],
        "val_count": split_counts[Split.VAL]["total"],
        "test_count": split_counts[Split.TEST]["total"],
        "split_counts": split_counts,
        "new_embeddings": state.new_embeddings,
        "reused_embeddings": state.reused_embeddings,
        **state.counts,
    }
