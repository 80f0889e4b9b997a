from __future__ import annotations

import pytest

from datasets.text_composition import (
    TEXT_TEMPLATE_VERSION,
    clean_text,
    compose_video_text,
    normalize_tags,
    text_checksum,
)


def test_template_version_is_v1() -> None:
    assert TEXT_TEMPLATE_VERSION == "v1"


def test_composes_labelled_lines_in_template_order() -> None:
    text = compose_video_text(
        title="【洛天依】歌名",
        description="原创曲\n作词：某人",
        tags="洛天依,VOCALOID,原创",
    )

    assert text == "标题：【洛天依】歌名\n简介：原创曲 作词：某人\n标签：洛天依, VOCALOID, 原创"


def test_html_tags_are_stripped_and_block_tags_separate_words() -> None:
    description = '<p>第一行<br/>第二行</p><a href="https://b23.tv/x">链接</a><!-- hidden --><b>粗</b>体'

    assert clean_text(description) == "第一行 第二行 链接 粗体"


def test_script_and_style_blocks_are_dropped_with_their_content() -> None:
    assert clean_text("a<script>alert(1)</script>b<style>p{}</style>c") == "a b c"


def test_entities_are_unescaped_once_after_tags_are_stripped() -> None:
    assert clean_text("Tom &amp; Jerry &lt;b&gt; &#x6D4B;&#35797; &nbsp;!") == "Tom & Jerry <b> 测试 !"


def test_text_that_only_looks_like_markup_survives() -> None:
    assert clean_text("1 < 2 > 0 <3") == "1 < 2 > 0 <3"


def test_whitespace_and_invisible_characters_are_normalised() -> None:
    assert clean_text("  a\t\tb\r\n\n c\u3000d\u200be\ufeff  ") == "a b c de"


def test_unicode_is_nfc_normalised() -> None:
    assert clean_text("e\u0301") == "\u00e9"


def test_tags_accept_any_comma_style_drop_empties_and_duplicates() -> None:
    assert normalize_tags(" 洛天依 ,，VOCALOID、原创;; 洛天依 ,,  ") == ["洛天依", "VOCALOID", "原创"]


def test_tags_may_be_given_as_a_list() -> None:
    assert normalize_tags(["a, b", "<i>c</i>", "", "a"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("title", "description", "tags", "expected"),
    [
        ("标题", "", "", "标题：标题"),
        ("", "  <br>  ", "x", "标签：x"),
        (None, "简介", None, "简介：简介"),
        ("", "", " , ", ""),
    ],
)
def test_empty_parts_are_omitted_with_their_label(
    title: str | None, description: str | None, tags: str | None, expected: str
) -> None:
    assert compose_video_text(title=title, description=description, tags=tags) == expected


def test_composition_is_deterministic() -> None:
    arguments = {"title": "<b>t</b>", "description": "d &amp; e", "tags": "x,y"}

    assert compose_video_text(**arguments) == compose_video_text(**arguments)


def test_checksum_is_sha256_hex_of_the_utf8_text() -> None:
    checksum = text_checksum("标题：测试")

    assert len(checksum) == 64
    assert checksum == text_checksum("标题：测试")
    assert all(character in "0123456789abcdef" for character in checksum)


def test_checksum_known_value() -> None:
    assert text_checksum("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert text_checksum("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_checksum_changes_with_any_change_in_the_text() -> None:
    base = compose_video_text(title="t", description="d", tags="x")

    assert text_checksum(base) != text_checksum(compose_video_text(title="t", description="d", tags="y"))
    assert text_checksum(base) != text_checksum(base + " ")


def test_equivalent_raw_inputs_share_a_checksum() -> None:
    # Differences cleaning removes must not create a second embedding.
    first = compose_video_text(title="<b>歌</b>", description="a  b", tags="x，y")
    second = compose_video_text(title="歌", description="a\nb", tags="x, y")

    assert text_checksum(first) == text_checksum(second)


def _clean_text_one_character_at_a_time(value: str) -> str:
    """The definition the fast ``clean_text`` must keep (template v1's checksums depend
    on it): HTML handling as ``clean_text``, then every whitespace character → one
    space, every other control or format character dropped, runs collapsed, trimmed."""
    import html
    import re
    import unicodedata

    from datasets import text_composition as composition

    text = composition._COMMENT_PATTERN.sub(" ", value)
    text = composition._SCRIPT_OR_STYLE_PATTERN.sub(" ", text)
    text = composition._BLOCK_TAG_PATTERN.sub(" ", text)
    text = composition._TAG_PATTERN.sub("", text)
    text = unicodedata.normalize("NFC", html.unescape(text))
    text = "".join(
        " " if character.isspace() else character for character in text
        if character.isspace() or unicodedata.category(character) not in {"Cc", "Cf"}
    )
    return re.sub(r"\s+", " ", text).strip()


def test_the_fast_path_cleans_exactly_like_the_character_by_character_definition() -> None:
    import random

    pool = ["a", "洛", "天", " ", "\n", "\t", "\u3000", "\u00a0", "\u200b", "\ufeff", "\u200d", "\x00", "\x1f",
            "\x7f", "\x85", "\u2028", "\ue000", "&amp;", "&#x200b;", "<br>", "<b>", "e\u0301", "😀", "\U000e0001"]
    generator = random.Random(13)
    samples = ["".join(generator.choice(pool) for _ in range(generator.randint(0, 30))) for _ in range(3000)]

    for sample in samples:
        assert clean_text(sample) == _clean_text_one_character_at_a_time(sample), repr(sample)
