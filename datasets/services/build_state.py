"""What a build collects on its way: the member videos and the vectors they use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BuildMember:
    video_id: int
    aid: int
    label: bool
    is_inconsistent: bool
    checksum: str
    split: str = ""
    #: Duplicate groups (``DuplicateGroupMember.group_id``) the video belongs to: a
    #: build keeps each group inside one split.
    groups: tuple[int, ...] = ()


@dataclass
class BuildState:
    members: list[BuildMember] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # checksum -> text
    embedding_ids: dict[str, int] = field(default_factory=dict)  # checksum -> Embedding.id
    counts: dict[str, int] = field(default_factory=dict)
    new_embeddings: int = 0
    reused_embeddings: int = 0
    #: Groups of two or more members (duplicates, same text) kept inside one split.
    split_groups_kept: int = 0
    frozen_vectors_kept: int = 0  # force_regenerate: vectors a ready version uses, left as they were
