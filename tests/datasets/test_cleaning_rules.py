"""Every cleaning rule on hand-made videos (Chinese, Japanese, English and other scripts)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from datasets.cleaning_rules import (
    is_placeholder,
    language_reason,
    letter_script,
    links_or_emoji_reason,
    rule_matches,
    rule_params_clean,
    text_core,
)
from tests.datasets.cleaning_factories import video

pytestmark = pytest.mark.django_db


def matched_aids(rule: str, **params) -> list[int]:
    return [match.aid for match in rule_matches(rule, rule_params_clean(rule, params))]


# --- pure checks --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "无", "-", "——", "暂无简介", "暂无简介。", "<p>无</p>", "N/A", "なし", "。。。"])
def test_placeholders_are_recognised(text):
    assert is_placeholder(text, frozenset(text_core(p) for p in ("无", "暂无简介", "n/a", "なし")))


@pytest.mark.parametrize("text", ["无人机航拍", "初音ミク", "a real description", "-很好-"])
def test_real_text_is_not_a_placeholder(text):
    assert not is_placeholder(text, frozenset(text_core(p) for p in ("无", "暂无简介")))


@pytest.mark.parametrize("char, script", [("中", "han"), ("の", "kana"), ("ミ", "kana"), ("a", "latin"),
                                          ("é", "latin"), ("한", "hangul"), ("д", "cyrillic"), ("ก", "other"),
                                          ("1", None), ("!", None), ("😀", None)])
def test_letter_scripts(char, script):
    assert letter_script(char) == script


def test_language_reason_allows_chinese_japanese_english_and_names_the_main_script():
    allowed = {"languages": ["zh", "ja", "en"], "min_share": 0.5}
    for title in ("洛天依原创曲", "初音ミクの歌", "VOCALOID original song", "🎵🎵 123"):
        assert language_reason({"title": title, "description": "", "tags": ""}, **allowed) is None
    reason = language_reason({"title": "안녕하세요 노래", "description": "", "tags": ""}, **allowed)
    assert reason is not None and "hangul" in reason
    # Only Chinese allowed: kana and Latin now count against the video.
    assert language_reason({"title": "初音ミクの歌です", "description": "", "tags": ""},
                           languages=["zh"], min_share=0.6) is not None


def test_links_or_emoji_reason():
    assert links_or_emoji_reason({"description": "https://b23.tv/abc 😀"}) is not None
    assert links_or_emoji_reason({"description": "BV1xx411c7mD"}) is not None
    assert links_or_emoji_reason({"description": "😀😀🎉"}) is not None
    assert links_or_emoji_reason({"description": "原曲 https://b23.tv/abc"}) is None
    assert links_or_emoji_reason({"description": ""}) is None  # empty is the placeholder rule's
    assert links_or_emoji_reason({"description": "plain words"}) is None


# --- each rule over the database -------------------------------------------------------------


def test_placeholder_text_rule():
    video(1, "无", "暂无简介")
    video(2, "-", "")
    video(3, "洛天依 原创曲", "无")  # a real title
    video(4, "なし", "特になし")  # Japanese placeholders
    video(5, "", "<p> </p>")
    assert matched_aids("placeholder_text") == [1, 2, 4, 5]
    assert matched_aids("placeholder_text", fields=["description"]) == [1, 2, 3, 4, 5]
    assert matched_aids("placeholder_text", fields=["title"], placeholders="-") == [2, 5]


def test_short_title_rule_counts_characters_not_bytes():
    video(1, "歌")
    video(2, "  初音  ")
    video(3, "初音ミク")
    video(4, "abc")
    assert matched_aids("short_title", min_length=4) == [1, 2, 4]
    assert matched_aids("short_title", min_length=2) == [1]
    [match] = rule_matches("short_title", {"min_length": 2})
    assert "1 character" in match.reason


def test_links_or_emoji_description_rule():
    video(1, "t1", "https://space.bilibili.com/123")
    video(2, "t2", "🎵🎶✨")
    video(3, "t3", "原曲: https://b23.tv/x 很好听")
    video(4, "t4", "")
    assert matched_aids("links_or_emoji_description") == [1, 2]


def test_banned_words_rule_any_case_in_chosen_fields():
    video(1, "加群领取资料", "")
    video(2, "Free DOWNLOAD here", "")
    video(3, "正常视频", "", tags="广告,音乐")
    video(4, "正常视频", "正常简介")
    assert matched_aids("banned_words", words=["加群", "download", "广告"]) == [1, 2, 3]
    assert matched_aids("banned_words", words="加群\ndownload", fields=["title"]) == [1, 2]
    assert matched_aids("banned_words", words=["广告"], fields=["title", "description"]) == []
    [match] = rule_matches("banned_words", rule_params_clean("banned_words", {"words": ["加群"]}))
    assert match.reason == "banned word '加群' in title"


def test_language_rule_keeps_chinese_japanese_english():
    video(1, "洛天依原创曲", "中文简介")
    video(2, "初音ミクの新曲", "ボカロ")
    video(3, "An English title", "with a description")
    video(4, "안녕하세요", "한국어 설명입니다")
    video(5, "Привет мир", "описание")
    video(6, "😀", "123")  # no letters: never matches
    assert matched_aids("language") == [4, 5]
    assert matched_aids("language", languages=["zh", "en"]) == [2, 4, 5]


def test_custom_rule():
    video(1, "短", "", duration=10, uploader_name="spam")
    video(2, "正常的标题", "", duration=10, uploader_name="ok")
    video(3, "正常的标题", "加群 123", duration=300, tags="广告")
    video(4, "x", "", duration=None)
    assert matched_aids("custom", expression="length(title) < 4 and duration < 30") == [1]
    assert matched_aids("custom", expression='uploader_name = "spam" or tags icontains "广告"') == [1, 3]
    assert matched_aids("custom", expression='description like "%加群%"') == [3]
    assert matched_aids("custom", expression="duration is empty") == [4]
    assert matched_aids("custom", expression="not duration < 30") == [3, 4]
    assert matched_aids("custom", expression='published_at = "2024-01-01" and duration >= 300') == [3]


@pytest.mark.parametrize("rule, params, key", [
    ("short_title", {"min_length": 0}, "params.min_length"),
    ("short_title", {"min_length": "many"}, "params.min_length"),
    ("short_title", {"min_lenght": 3}, "params.min_lenght"),
    ("banned_words", {}, "params.words"),
    ("banned_words", {"words": ["x"], "fields": ["uploader"]}, "params.fields"),
    ("language", {"min_share": 2}, "params.min_share"),
    ("language", {"languages": ["ko"]}, "params.languages"),
    ("custom", {"expression": "title = "}, "params.expression"),
    ("nonsense", {}, "rule"),
])
def test_bad_parameters_are_refused_by_name(rule, params, key):
    with pytest.raises(ValidationError) as raised:
        rule_params_clean(rule, params)
    assert key in raised.value.message_dict
