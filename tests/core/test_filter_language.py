"""The shared core of the filter languages: tokens with positions, a language's own
error type and words, LIKE as a regular expression."""

import re

import pytest

from core.filter_language import BoolOp, BooleanParser, FilterSyntaxError, Lexicon, Not, like_regex, tokenize


class ExpressionError(FilterSyntaxError):
    field = "expression"


LEXICON = Lexicon(word=re.compile(r"[a-z]+"), number=re.compile(r"[-+]?[0-9]+"), error=ExpressionError,
                  end_name="the end of the expression", key_quote="`")


class WordsParser(BooleanParser):
    """Comparisons are single words."""

    lexicon = LEXICON
    max_depth = 3

    def comparison(self):
        return self.expect("word", "a word").value


def test_tokens_carry_their_kind_value_and_1_based_position():
    tokens = tokenize('a >= -3 and `k k` != "x\\"y"', LEXICON)

    assert [(token.kind, token.value, token.position) for token in tokens] == [
        ("word", "a", 1), ("op", ">=", 3), ("number", "-3", 6), ("word", "and", 9), ("key", "k k", 13),
        ("op", "!=", 19), ("string", 'x"y', 22), ("end", None, 28),
    ]
    assert tokens[-1].shown() == "the end of the expression"


@pytest.mark.parametrize("text, position, problem", [
    ('a = "open', 5, 'unclosed string: expected a closing "'),
    ("a = `open", 5, "unclosed key: expected a closing `"),
    ("a ~ b", 3, "unexpected character '~'"),
])
def test_a_bad_token_is_the_languages_error_naming_the_position(text, position, problem):
    with pytest.raises(ExpressionError) as raised:
        tokenize(text, LEXICON)

    assert (raised.value.position, raised.value.problem) == (position, problem)
    assert raised.value.message_dict == {"expression": [f"at position {position}: {problem}"]}


def test_the_boolean_parser_binds_not_then_and_then_or():
    assert WordsParser("a or not b and c").parse() == BoolOp("or", ("a", BoolOp("and", (Not("b"), "c"))))
    with pytest.raises(ExpressionError, match="at position 3: expected and, or or the end of the expression"):
        WordsParser("a b").parse()
    with pytest.raises(ExpressionError, match="nested more than 3 deep"):
        WordsParser("((( a )))").parse()


def test_like_patterns_become_anchored_regular_expressions():
    assert like_regex("%加群_") == "^.*加群.$"
    assert like_regex("100\\%") == "^100%$"
    assert re.match(like_regex("a.b%"), "a.bcd") and not re.match(like_regex("a.b%"), "axbcd")
