"""Django's ``ValidationError`` as one line of text, written once for every app: a
management command's ``CommandError``, an admin or page message, a task's error."""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


def is_int(value: object) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` subclass; ``dimensions = true``
    is a mistake, not 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def join_messages(messages: list[str]) -> str:
    """Sentences joined by ``"; "``, each but the last without its full stop, so that
    ``'"" is not a valid choice.'`` and ``'A valid integer is required.'`` read as one
    sentence rather than ``'….; …'``."""
    parts = [message.strip() for message in messages if message and message.strip()]
    return "; ".join([part.removesuffix(".") for part in parts[:-1]] + parts[-1:])


def validation_error_message(error: ValidationError, *, with_fields: bool = True) -> str:
    """``error`` as one line: ``field: message; other: message`` (for a command or a
    log), or without the field names (``with_fields=False``, for a page message).
    Messages that belong to no field (``NON_FIELD_ERRORS``) stand alone; the messages of
    one field are joined by a space, fields and field-less messages by ``"; "``."""
    if not hasattr(error, "error_dict"):
        return join_messages(error.messages)
    parts = []
    for field, messages in error.message_dict.items():
        text = " ".join(messages)
        parts.append(text if field == NON_FIELD_ERRORS or not with_fields else f"{field}: {text}")
    return join_messages(parts)
