"""core.validation: a ValidationError as one line, the same for every app."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from core.validation import join_messages, validation_error_message


def test_field_errors_are_one_line_with_or_without_the_field_names():
    keyed = ValidationError({"aid_list": ["is empty", "really"], "seed": "must be an integer"})

    assert validation_error_message(keyed) == "aid_list: is empty really; seed: must be an integer"
    assert validation_error_message(keyed, with_fields=False) == "is empty really; must be an integer"


def test_messages_of_no_field_stand_alone():
    assert validation_error_message(ValidationError(["a", "b"])) == "a; b"
    assert validation_error_message(ValidationError("one")) == "one"
    assert validation_error_message(ValidationError({"__all__": "whole", "seed": "bad"})) == "whole; seed: bad"


def test_the_datasets_app_reexports_the_one_function():
    from datasets import services

    assert services.validation_error_message is validation_error_message


def test_joined_messages_read_as_one_sentence():
    assert join_messages(['"" is not a valid choice.', "A valid integer is required."]) == (
        '"" is not a valid choice; A valid integer is required.'
    )
    assert join_messages(["only one."]) == "only one."
    assert join_messages([]) == ""
