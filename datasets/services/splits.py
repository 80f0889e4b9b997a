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


def assign_splits(members: list[BuildMember], ratios: tuple[float, float, float], seed: int) -> None:
    """Deterministic, stratified by label: within each label, members are ranked by
    blake2b(seed:aid) and cut by the ratios. The same seed keeps a video in the same
    split across versions except near the cut points."""
    for label in (False, True):
        group = sorted((m for m in members if m.label is label), key=lambda m: _split_rank_key(seed, m.aid))
        train, val, _ = _split_sizes(len(group), ratios)
        for position, member in enumerate(group):
            member.split = Split.TRAIN if position < train else Split.VAL if position < train + val else Split.TEST


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
