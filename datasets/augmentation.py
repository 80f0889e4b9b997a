"""Text augmentation of a video: perturbed copies of its composed text (pure, seeded).

Every kind returns the template text (``text_composition.compose_video_text``) of a
perturbed video, so an augmented text is embedded exactly like a member's text, or
``[]`` when the kind does not apply to the video (nothing to shuffle, no title...) or
would only repeat the member's own text:

- ``character_noise``: ``copies`` variants; in the title and the description a share
  ``noise_rate`` of the characters (at least one per non-empty part) is swapped with
  its neighbour, dropped, or written twice. It works on Unicode characters (a character
  with its combining marks is one unit), never on bytes, and leaves whitespace alone, so
  Chinese and Japanese text stays valid text. Tags are kept as they are.
- ``tag_shuffle``: the tags in another order (videos with at least two tags).
- ``title_only`` / ``description_only``: the video with only that part.

The same (video, kind, variant, seed, rate) always gives the same text: the random
generator of each copy is seeded from those values, not from a shared stream, so
adding a video or a kind never changes the copies of the others.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from typing import Final

from datasets.models import AugmentationKind
from datasets.text_composition import clean_text, compose_video_text, normalize_tags

MIN_COPIES: Final = 1
MAX_COPIES: Final = 5
MIN_NOISE_RATE: Final = 0.01
MAX_NOISE_RATE: Final = 0.3
DEFAULT_COPIES: Final = 2
DEFAULT_NOISE_RATE: Final = 0.05

_NOISE_OPERATIONS: Final = ("swap", "drop", "duplicate")


@dataclass(frozen=True)
class VideoParts:
    """The raw text fields of a video, as stored (cleaned when composed)."""

    aid: int
    title: str
    description: str
    tags: str


@dataclass(frozen=True)
class AugmentedText:
    kind: str
    variant: int
    text: str


def augment_video(
    video: VideoParts, kind: str, *, copies: int = DEFAULT_COPIES, noise_rate: float = DEFAULT_NOISE_RATE,
    seed: int = 0,
) -> list[AugmentedText]:
    """The augmented texts of ``video`` for ``kind`` (never empty texts, never the
    member's own text); raises ``ValueError`` for an unknown kind."""
    original = compose_video_text(title=video.title, description=video.description, tags=video.tags)
    if kind == AugmentationKind.CHARACTER_NOISE:
        texts = [character_noise_text(video, variant=variant, noise_rate=noise_rate, seed=seed)
                 for variant in range(copies)]
    elif kind == AugmentationKind.TAG_SHUFFLE:
        texts = [tag_shuffle_text(video, seed=seed)]
    elif kind == AugmentationKind.TITLE_ONLY:
        texts = [compose_video_text(title=video.title, description=None, tags=None)]
    elif kind == AugmentationKind.DESCRIPTION_ONLY:
        texts = [compose_video_text(title=None, description=video.description, tags=None)]
    else:
        raise ValueError(f"unknown augmentation kind {kind!r} (known: {', '.join(AugmentationKind.values)})")
    return [AugmentedText(kind=str(kind), variant=variant, text=text)
            for variant, text in enumerate(texts) if text and text != original]


def character_noise_text(video: VideoParts, *, variant: int, noise_rate: float, seed: int) -> str:
    title = perturb_characters(clean_text(video.title), _generator(seed, video.aid, "noise-title", variant),
                               noise_rate)
    description = perturb_characters(clean_text(video.description),
                                     _generator(seed, video.aid, "noise-description", variant), noise_rate)
    return compose_video_text(title=title, description=description, tags=video.tags)


def tag_shuffle_text(video: VideoParts, *, seed: int) -> str:
    """The video with its tags in another order ("" with fewer than two tags)."""
    tags = normalize_tags(video.tags)
    if len(tags) < 2:
        return ""
    shuffled = list(tags)
    _generator(seed, video.aid, "tag-shuffle", 0).shuffle(shuffled)
    if shuffled == tags:  # the shuffle may land on the same order: rotate instead
        shuffled = tags[1:] + tags[:1]
    return compose_video_text(title=video.title, description=video.description, tags=shuffled)


def perturb_characters(text: str, generator: random.Random, noise_rate: float) -> str:
    """``text`` with ``max(1, round(noise_rate * units))`` edits at distinct units: swap
    with the next unit, drop (never the last unit left), or duplicate. A unit is a
    character with the combining marks that follow it (so a mark never leaves its
    letter); whitespace is never edited. "" stays ""."""
    units = _character_units(text)
    editable = [index for index, unit in enumerate(units) if not unit.isspace()]
    if not editable:
        return text
    edits = min(len(editable), max(1, round(noise_rate * len(editable))))
    # From the end backwards, so an edit never moves the positions still to edit.
    for index in sorted(generator.sample(editable, edits), reverse=True):
        operation = generator.choice(_NOISE_OPERATIONS)
        # Swapping two equal units would change nothing: such a swap duplicates instead.
        if (operation == "swap" and index + 1 < len(units) and not units[index + 1].isspace()
                and units[index + 1] != units[index]):
            units[index], units[index + 1] = units[index + 1], units[index]
        elif operation == "drop" and len(units) > 1:
            del units[index]
        else:
            units.insert(index, units[index])
    return "".join(units)


def _character_units(text: str) -> list[str]:
    units: list[str] = []
    for character in text:
        if units and unicodedata.category(character).startswith("M"):
            units[-1] += character
        else:
            units.append(character)
    return units


def _generator(seed: int, aid: int, purpose: str, variant: int) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: the same on every run and machine.
    return random.Random(f"{seed}:{aid}:{purpose}:{variant}")


__all__ = [
    "DEFAULT_COPIES",
    "DEFAULT_NOISE_RATE",
    "MAX_COPIES",
    "MAX_NOISE_RATE",
    "MIN_COPIES",
    "MIN_NOISE_RATE",
    "AugmentedText",
    "VideoParts",
    "augment_video",
    "character_noise_text",
    "perturb_characters",
    "tag_shuffle_text",
]
