"""The pure augmentation kinds (``datasets.augmentation``): what each produces, seeded."""

from __future__ import annotations

import random
import unicodedata

import pytest

from datasets.augmentation import VideoParts, augment_video, perturb_characters
from datasets.models import AugmentationKind
from datasets.text_composition import DESCRIPTION_LABEL, TAGS_LABEL, TITLE_LABEL, compose_video_text

CHINESE = VideoParts(aid=170001, title="【原神】新角色演示 PV「神女劈观」",
                     description="今天给大家带来最新的角色演示视频，欢迎观看！喜欢的话请三连支持～",
                     tags="原神,游戏,PV,角色演示")
ENGLISH = VideoParts(aid=42, title="How to cook rice", description="Step by step <b>guide</b>", tags="food, cooking")
VIDEOS = [CHINESE, ENGLISH,
          VideoParts(aid=7, title="初音ミク 「千本桜」 歌ってみた", description="", tags="VOCALOID,初音ミク"),
          VideoParts(aid=8, title="标题", description="简介", tags="a")]


def original(video: VideoParts) -> str:
    return compose_video_text(title=video.title, description=video.description, tags=video.tags)


@pytest.mark.parametrize("kind", AugmentationKind.values)
@pytest.mark.parametrize("video", VIDEOS, ids=lambda video: str(video.aid))
def test_the_same_seed_gives_the_same_texts_never_empty_never_the_original(kind, video):
    first = augment_video(video, kind, copies=3, noise_rate=0.1, seed=5)
    again = augment_video(video, kind, copies=3, noise_rate=0.1, seed=5)
    assert first == again
    for augmented in first:
        assert augmented.text.strip()
        assert augmented.text != original(video)
        assert augmented.kind == kind


def test_character_noise_makes_the_asked_copies_and_another_seed_other_ones():
    copies = augment_video(CHINESE, AugmentationKind.CHARACTER_NOISE, copies=4, noise_rate=0.1, seed=1)
    assert [copy.variant for copy in copies] == [0, 1, 2, 3]
    assert len({copy.text for copy in copies}) == 4
    other_seed = augment_video(CHINESE, AugmentationKind.CHARACTER_NOISE, copies=4, noise_rate=0.1, seed=2)
    assert {copy.text for copy in copies} != {copy.text for copy in other_seed}


def test_character_noise_keeps_the_template_and_the_tags_and_only_uses_the_videos_characters():
    for copy in augment_video(CHINESE, AugmentationKind.CHARACTER_NOISE, copies=5, noise_rate=0.2, seed=0):
        title_line, description_line, tags_line = copy.text.split("\n")
        assert title_line.startswith(TITLE_LABEL)
        assert description_line.startswith(DESCRIPTION_LABEL)
        assert tags_line == TAGS_LABEL + "原神, 游戏, PV, 角色演示"
        # Swaps, drops and duplicates move CJK characters as whole characters: no new ones appear.
        assert set(title_line + description_line) <= set(original(CHINESE))


def test_perturbing_characters_edits_a_share_of_them_and_keeps_whitespace_and_marks_on_their_letter():
    text = "千本桜 e\u0301te\u0301 夜ニ紛レ"  # é as e + combining acute: one unit, moved or dropped whole
    changed = 0
    for seed in range(30):
        noisy = perturb_characters(text, random.Random(seed), 0.3)
        changed += noisy != text
        assert noisy.count(" ") == 2
        for index, character in enumerate(noisy):
            if unicodedata.category(character).startswith("M"):
                assert noisy[index - 1] == "e"
        # 11 editable units at 0.3: 3 edits, each adding or removing at most one unit.
        assert abs(len(noisy) - len(text)) <= 3 * 2
    assert changed >= 25


def test_perturbing_never_empties_a_text_and_leaves_empty_text_empty():
    assert perturb_characters("", random.Random(0), 0.3) == ""
    for seed in range(20):
        assert perturb_characters("字", random.Random(seed), 0.3) in {"字", "字字"}


def test_tag_shuffle_keeps_the_tags_in_another_order_and_skips_videos_with_fewer_than_two():
    [shuffled] = augment_video(CHINESE, AugmentationKind.TAG_SHUFFLE, seed=0)
    tags_line = shuffled.text.split("\n")[-1]
    tags = tags_line.removeprefix(TAGS_LABEL).split(", ")
    assert sorted(tags) == sorted(["原神", "游戏", "PV", "角色演示"])
    assert tags != ["原神", "游戏", "PV", "角色演示"]
    assert shuffled.text.split("\n")[:2] == original(CHINESE).split("\n")[:2]
    two_tags = VideoParts(aid=1, title="t", description="", tags="a,b")
    for seed in range(10):  # two tags: the only other order, whatever the seed
        assert augment_video(two_tags, AugmentationKind.TAG_SHUFFLE, seed=seed)[0].text.endswith("b, a")
    assert augment_video(VIDEOS[3], AugmentationKind.TAG_SHUFFLE) == []


def test_title_only_and_description_only_hold_only_their_part():
    [title_only] = augment_video(ENGLISH, AugmentationKind.TITLE_ONLY)
    assert title_only.text == TITLE_LABEL + "How to cook rice"
    assert DESCRIPTION_LABEL not in title_only.text and TAGS_LABEL not in title_only.text
    [description_only] = augment_video(ENGLISH, AugmentationKind.DESCRIPTION_ONLY)
    assert description_only.text == DESCRIPTION_LABEL + "Step by step guide"  # cleaned like a member's text
    assert TITLE_LABEL not in description_only.text and "rice" not in description_only.text


def test_kinds_that_do_not_apply_give_nothing():
    no_description = VIDEOS[2]
    assert augment_video(no_description, AugmentationKind.DESCRIPTION_ONLY) == []
    title_alone = VideoParts(aid=9, title="只有标题", description="", tags="")
    assert augment_video(title_alone, AugmentationKind.TITLE_ONLY) == []  # it would be the member's own text
    with pytest.raises(ValueError, match="unknown augmentation kind"):
        augment_video(ENGLISH, "back_translation")
